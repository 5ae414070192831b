// The bbaegok API stand-in: what the platform sees of the Spring Boot app.
//
//   - configuration from Spring Boot's environment: SERVER_PORT,
//     SPRING_DATASOURCE_URL (jdbc:mariadb, jdbc:mysql, jdbc:postgresql),
//     SPRING_DATASOURCE_USERNAME, and the password from the config tree named
//     by SPRING_CONFIG_IMPORT (file spring.datasource.password) unless
//     SPRING_DATASOURCE_PASSWORD is set;
//   - GET /actuator/health: 200 {"status":"UP"} while SELECT 1 on the
//     database succeeds, 503 {"status":"DOWN"} otherwise (always 503 when
//     BBAEGOK_TEST_UNHEALTHY is set: a release that never turns healthy);
//     with a read-only datasource, it is checked too unless
//     MANAGEMENT_HEALTH_DB_IGNOREROUTINGDATASOURCES is true: the README's
//     app reaches it only through its routing DataSource, whose targets
//     Spring Boot's db health checks unless told to ignore routing ones;
//   - GET /slow?ms=N answers after N ms (in-flight requests across a switch);
//   - the read-only datasource the program gives (SPRING_DATASOURCE_REPLICA_URL,
//     _USERNAME, the same password): GET /test/replica answers 200 while
//     SELECT 1 succeeds on it, 503 otherwise, 404 when none is configured
//     (the real app routes readOnly transactions to it; this shows the slot
//     reaches it with what it is given);
//   - any other path: JSON naming the version (BBAEGOK_APP_VERSION, set by the
//     image) and the slot (BBAEGOK_SLOT), so tests tell blue from green;
//   - the JDBC drivers the image bundles: BBAEGOK_TEST_JDBC_DRIVERS (Maven
//     artifacts, comma-separated; unset: all three); a URL whose driver is
//     not among them stops the start with Hikari's "Failed to load driver
//     class", as the real app does when its build lacks the driver;
//   - the database not answering at start (after BBAEGOK_TEST_STARTUP_DELAY_MS):
//     exits 1 with Hibernate's "Unable to determine Dialect without JDBC
//     metadata", as the team's JPA app does (it never waits for the database);
//   - SIGTERM: stops accepting, finishes in-flight requests (at most 30 s, as
//     Spring's graceful shutdown), then exits 0.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // TZ=Asia/Seoul works without the image's zoneinfo

	"bbaegok-infra/test/docker/images/app/internal/datasource"
)

func main() {
	log.SetFlags(log.LstdFlags | log.LUTC)
	port := envOr("SERVER_PORT", "8080")
	version := envOr("BBAEGOK_APP_VERSION", "dev")
	slot := os.Getenv("BBAEGOK_SLOT")
	unhealthy := truthy(os.Getenv("BBAEGOK_TEST_UNHEALTHY"))
	// Spring binds management.health.db.ignore-routing-data-sources from this variable (relaxed binding).
	ignoreRouting := strings.EqualFold(strings.TrimSpace(os.Getenv("MANAGEMENT_HEALTH_DB_IGNOREROUTINGDATASOURCES")), "true")

	db, target, err := openDatasource("SPRING_DATASOURCE_URL", "SPRING_DATASOURCE_USERNAME")
	var replica *sql.DB
	replicaTarget := "(none)"
	if err == nil {
		replica, replicaTarget, err = openDatasource("SPRING_DATASOURCE_REPLICA_URL", "SPRING_DATASOURCE_REPLICA_USERNAME")
	}
	if err != nil {
		// Spring Boot does not start with a broken datasource configuration.
		log.Printf("APPLICATION FAILED TO START: %v", err)
		os.Exit(1)
	}
	if ms, _ := strconv.Atoi(os.Getenv("BBAEGOK_TEST_STARTUP_DELAY_MS")); ms > 0 {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	// The team's app is a JPA app: at start Hibernate reads the database's
	// metadata through one connection of the primary pool (Hikari tries once),
	// and without it Spring Boot does not start; it does not wait for the
	// database to come up. Docker's restart policy starts it again.
	if db != nil {
		if err := datasource.Check(context.Background(), db, 30*time.Second); err != nil {
			log.Printf("APPLICATION FAILED TO START: Failed to initialize JPA EntityManagerFactory: Unable to create requested service [org.hibernate.engine.jdbc.env.spi.JdbcEnvironment] due to: Unable to determine Dialect without JDBC metadata (no connection to %s: %v)", target, err)
			os.Exit(1)
		}
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /actuator/health", func(w http.ResponseWriter, r *http.Request) {
		if unhealthy {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "DOWN", "details": "BBAEGOK_TEST_UNHEALTHY is set"})
			return
		}
		if db == nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "DOWN", "details": "no datasource configured (SPRING_DATASOURCE_URL)"})
			return
		}
		if err := datasource.Check(r.Context(), db, 3*time.Second); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "DOWN", "details": err.Error()})
			return
		}
		if replica != nil && !ignoreRouting {
			if err := datasource.Check(r.Context(), replica, 3*time.Second); err != nil {
				writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "DOWN", "details": fmt.Sprintf("the read-only datasource %s: %v", replicaTarget, err)})
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "UP"})
	})
	mux.HandleFunc("GET /test/replica", func(w http.ResponseWriter, r *http.Request) {
		if replica == nil {
			writeJSON(w, http.StatusNotFound, map[string]any{"status": "NONE", "details": "no read-only datasource configured (SPRING_DATASOURCE_REPLICA_URL)"})
			return
		}
		if err := datasource.Check(r.Context(), replica, 3*time.Second); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "DOWN", "replica": replicaTarget, "details": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "UP", "replica": replicaTarget})
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		ms = max(0, min(ms, 120_000))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		writeJSON(w, http.StatusOK, describe(r, version, slot, map[string]any{"sleptMs": ms}))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, describe(r, version, slot, nil))
	})

	server := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan struct{})
	go func() {
		sig := <-stop
		log.Printf("%s: graceful shutdown, waiting for active requests to complete", sig)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := server.Shutdown(ctx); err != nil {
			log.Printf("graceful shutdown aborted: %v", err)
		} else {
			log.Printf("graceful shutdown complete")
		}
		close(done)
	}()

	log.Printf("Started bbaegok-api %s (slot %q) on port %s, datasource %s, read-only datasource %s", version, slot, port, target, replicaTarget)
	if err := server.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Printf("APPLICATION FAILED TO START: %v", err)
		os.Exit(1)
	}
	<-done
	for _, pool := range []*sql.DB{db, replica} {
		if pool != nil {
			pool.Close()
		}
	}
}

// openDatasource reads Spring's settings for one datasource (its URL and
// username variables; the password is spring.datasource.password for both);
// no URL means no such datasource.
func openDatasource(urlVar, userVar string) (*sql.DB, string, error) {
	jdbc := os.Getenv(urlVar)
	if jdbc == "" {
		return nil, "(none)", nil
	}
	if err := datasource.CheckDriver(jdbc, os.Getenv("BBAEGOK_TEST_JDBC_DRIVERS")); err != nil {
		return nil, "", err
	}
	target, err := datasource.ParseJDBC(jdbc)
	if err != nil {
		return nil, "", err
	}
	target.User = os.Getenv(userVar)
	if password, ok := os.LookupEnv("SPRING_DATASOURCE_PASSWORD"); ok {
		target.Password = password
	} else {
		password, _, err := datasource.ConfigTreeProperty(os.Getenv("SPRING_CONFIG_IMPORT"), "spring.datasource.password")
		if err != nil {
			return nil, "", err
		}
		target.Password = password
	}
	db, err := datasource.Open(target)
	return db, target.String(), err
}

func describe(r *http.Request, version, slot string, extra map[string]any) map[string]any {
	body := map[string]any{
		"service": "bbaegok-api",
		"version": version,
		"slot":    slot,
		"method":  r.Method,
		"path":    r.URL.Path,
		"host":    r.Host,
	}
	headers := map[string]string{}
	for _, name := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port", "X-Real-Ip", "X-Request-Id"} {
		if v := r.Header.Get(name); v != "" {
			headers[name] = v
		}
	}
	body["headers"] = headers
	for k, v := range extra {
		body[k] = v
	}
	return body
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(body); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func truthy(v string) bool {
	switch v {
	case "", "0", "false", "no":
		return false
	}
	return true
}
