package bbaegok.api;

import com.zaxxer.hikari.HikariDataSource;
import java.util.Map;
import javax.sql.DataSource;
import org.springframework.boot.autoconfigure.jdbc.DataSourceProperties;
import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.jdbc.DataSourceBuilder;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Primary;
import org.springframework.core.env.Environment;
import org.springframework.jdbc.datasource.LazyConnectionDataSourceProxy;
import org.springframework.jdbc.datasource.lookup.AbstractRoutingDataSource;
import org.springframework.transaction.support.TransactionSynchronizationManager;

/**
 * The read-only routing exactly as README "Read replicas" tells the team to
 * write it: the primary's pool is a bean; the replica's pool is built inside
 * the routing bean's factory method (not a bean of its own); the routing
 * DataSource picks the replica for @Transactional(readOnly = true), wrapped in
 * a LazyConnectionDataSourceProxy so the connection is taken after the
 * transaction's readOnly flag is set. Without SPRING_DATASOURCE_REPLICA_URL
 * (a stack without a replica) both keys lead to the primary.
 */
@Configuration
class ReadReplicaRouting {
  @Bean
  @ConfigurationProperties("spring.datasource.hikari")
  HikariDataSource primaryDataSource(DataSourceProperties properties) {
    return properties.initializeDataSourceBuilder().type(HikariDataSource.class).build();
  }

  @Bean
  @Primary
  DataSource dataSource(HikariDataSource primaryDataSource, DataSourceProperties properties, Environment env) {
    String url = env.getProperty("spring.datasource.replica.url", "");
    DataSource replica = url.isBlank()
        ? primaryDataSource
        : DataSourceBuilder.create()
            .type(HikariDataSource.class)
            .url(url)
            .username(env.getProperty("spring.datasource.replica.username", properties.determineUsername()))
            // The same password as the primary's: spring.datasource.password, from the secret file (configtree).
            .password(properties.determinePassword())
            .build();
    AbstractRoutingDataSource routing = new AbstractRoutingDataSource() {
      @Override
      protected Object determineCurrentLookupKey() {
        return TransactionSynchronizationManager.isCurrentTransactionReadOnly() ? "replica" : "primary";
      }
    };
    routing.setTargetDataSources(Map.of("primary", primaryDataSource, "replica", replica));
    routing.setDefaultTargetDataSource(primaryDataSource);
    routing.afterPropertiesSet();
    return new LazyConnectionDataSourceProxy(routing);
  }
}
