package bbaegok.api;

import com.zaxxer.hikari.HikariDataSource;
import java.sql.Connection;
import java.sql.SQLException;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import javax.sql.DataSource;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
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
 * transaction's readOnly flag is set. While the replica gives no connection
 * (stopped, its server or the link down), readOnly transactions fall back to
 * the primary: the replica takes reads off the primary, it must not become a
 * way for reads to fail. Without SPRING_DATASOURCE_REPLICA_URL (a stack
 * without a replica) everything goes to the primary.
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
    HikariDataSource replica = null;
    if (!url.isBlank()) {
      replica = DataSourceBuilder.create()
          .type(HikariDataSource.class)
          .url(url)
          .username(env.getProperty("spring.datasource.replica.username", properties.determineUsername()))
          // The same password as the primary's: spring.datasource.password, from the secret file (configtree).
          .password(properties.determinePassword())
          .build();
      // How long a read waits for a replica that does not answer before it goes to the primary (Hikari's default: 30 s).
      // Hikari also makes it DriverManager's login timeout, JVM-wide: new connections to the primary get it too.
      replica.setConnectionTimeout(env.getProperty("bbaegok.replica.connection-timeout-ms", Long.class, 2_000L));
    }
    long retryAfterSeconds = env.getProperty("bbaegok.replica.retry-after-seconds", Long.class, 30L);
    return new LazyConnectionDataSourceProxy(new ReplicaRouting(primaryDataSource, replica, retryAfterSeconds));
  }

  /**
   * readOnly transactions to the replica, the rest to the primary. When the
   * replica gives no connection, that read and every read for the next
   * retryAfterSeconds go to the primary (so only one read per period waits
   * for a replica that does not answer), then the replica is tried again.
   * A connection that breaks inside a transaction is not retried elsewhere:
   * that request fails (503 by DatabaseErrors), the next one falls back.
   */
  static final class ReplicaRouting extends AbstractRoutingDataSource {
    private static final Logger log = LoggerFactory.getLogger(ReplicaRouting.class);
    private final DataSource primary;
    private final HikariDataSource replica;
    private final long retryAfterNanos;
    /** System.nanoTime() until which readOnly transactions skip the replica; meaningful while replicaDown. */
    private volatile long skipReplicaUntil;
    private volatile boolean replicaDown;

    ReplicaRouting(DataSource primary, HikariDataSource replica, long retryAfterSeconds) {
      this.primary = primary;
      this.replica = replica;
      this.retryAfterNanos = TimeUnit.SECONDS.toNanos(retryAfterSeconds);
      // Spring's db health sees these targets (unless management.health.db.ignore-routing-data-sources).
      setTargetDataSources(replica == null ? Map.of("primary", primary) : Map.of("primary", primary, "replica", replica));
      setDefaultTargetDataSource(primary);
      afterPropertiesSet();
    }

    @Override
    protected Object determineCurrentLookupKey() {
      return replica != null && TransactionSynchronizationManager.isCurrentTransactionReadOnly() ? "replica" : "primary";
    }

    @Override
    public Connection getConnection() throws SQLException {
      if (!"replica".equals(determineCurrentLookupKey())) return primary.getConnection();
      if (replicaDown && System.nanoTime() - skipReplicaUntil < 0) return primary.getConnection();
      try {
        Connection connection = replica.getConnection();
        // Hikari hands out a connection used or opened in the last 500 ms without checking it
        // (its aliveBypassWindowMs): one whose replica died since would fail this read inside its
        // transaction (503). One ping per readOnly transaction finds it dead first; it waits at
        // most the connection timeout, rounded up to whole seconds (isValid's unit).
        if (!connection.isValid(validSeconds())) {
          replica.evictConnection(connection);
          throw new SQLException("a pooled connection to the replica is dead");
        }
        if (replicaDown) {
          replicaDown = false;
          log.info("the read replica gives connections again: readOnly transactions go to it");
        }
        return connection;
      } catch (SQLException | RuntimeException e) {
        skipReplicaUntil = System.nanoTime() + retryAfterNanos;
        replicaDown = true;
        log.warn("the read replica gives no connection ({}): readOnly transactions go to the primary for {} s", e.getMessage(), TimeUnit.NANOSECONDS.toSeconds(retryAfterNanos));
        return primary.getConnection();
      }
    }

    private int validSeconds() {
      return (int) Math.max(1, TimeUnit.MILLISECONDS.toSeconds(replica.getConnectionTimeout() + 999));
    }
  }
}
