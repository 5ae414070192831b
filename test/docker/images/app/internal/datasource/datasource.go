// Package datasource opens the database a stand-in talks to: from Spring
// Boot's settings (a JDBC URL, a user name, the password from a config tree)
// for the app, or from plain parts for Metabase.
package datasource

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Target is one database to connect to.
type Target struct {
	// Engine is "mysql" (MySQL and MariaDB speak the same protocol) or "postgres".
	Engine   string
	Host     string
	Port     string
	Database string
	User     string
	Password string
}

func (t Target) String() string {
	return fmt.Sprintf("%s://%s@%s/%s", t.Engine, t.User, net.JoinHostPort(t.Host, t.Port), t.Database)
}

// DriverClass is the JDBC driver class Spring Boot loads for a URL's scheme
// (DatabaseDriver.fromJdbcUrl), and the Maven artifact that ships it.
type DriverClass struct{ Class, Artifact string }

var driverClasses = map[string]DriverClass{
	"mariadb":    {"org.mariadb.jdbc.Driver", "mariadb-java-client"},
	"mysql":      {"com.mysql.cj.jdbc.Driver", "mysql-connector-j"},
	"postgresql": {"org.postgresql.Driver", "postgresql"},
}

// CheckDriver fails as Spring Boot does when the URL's driver is not on the
// classpath (Spring derives the class from the URL and Hikari's
// setDriverClassName refuses it): bundled lists the artifacts the image has (comma-separated;
// empty: every one), as the real app's build file decides.
func CheckDriver(jdbc, bundled string) error {
	scheme, _, _ := strings.Cut(strings.TrimPrefix(jdbc, "jdbc:"), ":")
	driver, ok := driverClasses[scheme]
	if !ok || strings.TrimSpace(bundled) == "" {
		return nil
	}
	for _, artifact := range strings.Split(bundled, ",") {
		if strings.TrimSpace(artifact) == driver.Artifact {
			return nil
		}
	}
	return fmt.Errorf("Failed to load driver class %s in either of HikariConfig class loader or Thread context classloader (the image bundles %s, not %s)", driver.Class, bundled, driver.Artifact)
}

// ParseJDBC reads jdbc:mariadb://, jdbc:mysql:// and jdbc:postgresql:// URLs
// (host, optional port, database; query parameters are accepted and ignored).
func ParseJDBC(jdbc string) (Target, error) {
	rest, ok := strings.CutPrefix(jdbc, "jdbc:")
	if !ok {
		return Target{}, fmt.Errorf("datasource URL %q does not start with jdbc:", jdbc)
	}
	u, err := url.Parse(rest)
	if err != nil {
		return Target{}, fmt.Errorf("datasource URL %q: %w", jdbc, err)
	}
	var t Target
	switch u.Scheme {
	case "mariadb", "mysql":
		t = Target{Engine: "mysql", Port: "3306"}
	case "postgresql":
		t = Target{Engine: "postgres", Port: "5432"}
	default:
		return Target{}, fmt.Errorf("datasource URL %q: no driver for jdbc:%s (this stand-in knows mariadb, mysql, postgresql)", jdbc, u.Scheme)
	}
	t.Host = u.Hostname()
	if p := u.Port(); p != "" {
		t.Port = p
	}
	t.Database = strings.TrimPrefix(u.Path, "/")
	if t.Host == "" || t.Database == "" {
		return Target{}, fmt.Errorf("datasource URL %q names no host or no database", jdbc)
	}
	return t, nil
}

// ConfigTreeProperty finds a property the way Spring Boot's
// `spring.config.import=optional:configtree:<dir>/` does: every import that is
// a config tree is walked (Spring lists the directory, so a directory the
// process may traverse but not read fails the start, as it does in Spring:
// "Unable to find files in ..."); a file's path below the tree, with "/" read
// as ".", is the property's name; one trailing newline is trimmed. A missing
// directory is an error unless the import is optional.
func ConfigTreeProperty(imports, property string) (string, bool, error) {
	value, found := "", false
	for _, location := range strings.Split(imports, ",") {
		location = strings.TrimSpace(location)
		optional := false
		if l, ok := strings.CutPrefix(location, "optional:"); ok {
			optional, location = true, l
		}
		dir, ok := strings.CutPrefix(location, "configtree:")
		if !ok {
			continue
		}
		info, err := os.Stat(dir)
		if err != nil || !info.IsDir() {
			if optional && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return "", false, fmt.Errorf("config tree %q: %v", dir, err)
		}
		err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, path)
			if d.IsDir() || strings.HasPrefix(rel, "..") || strings.Contains(rel, "/..") {
				return nil
			}
			if strings.ReplaceAll(rel, "/", ".") != property {
				return nil
			}
			content, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			text := string(content)
			if strings.Count(text, "\n") == 1 {
				text = strings.TrimSuffix(strings.TrimSuffix(text, "\n"), "\r")
			}
			value, found = text, true
			return nil
		})
		if err != nil {
			// Spring names the folder as a Path, without the location's trailing "/" (seen from the real app: test/docker/spring-app.test.ts).
			return "", false, fmt.Errorf("Unable to find files in '%s': %v", strings.TrimSuffix(dir, "/"), err)
		}
	}
	return value, found, nil
}

// Open returns a pool for the target; nothing connects until it is used.
func Open(t Target) (*sql.DB, error) {
	var db *sql.DB
	switch t.Engine {
	case "mysql":
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd = t.User, t.Password
		cfg.Net, cfg.Addr, cfg.DBName = "tcp", net.JoinHostPort(t.Host, t.Port), t.Database
		cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 3*time.Second, 10*time.Second, 10*time.Second
		connector, err := mysql.NewConnector(cfg)
		if err != nil {
			return nil, err
		}
		db = sql.OpenDB(connector)
	case "postgres":
		u := url.URL{Scheme: "postgres", User: url.UserPassword(t.User, t.Password), Host: net.JoinHostPort(t.Host, t.Port), Path: "/" + t.Database, RawQuery: "sslmode=disable&connect_timeout=3"}
		cfg, err := pgx.ParseConfig(u.String())
		if err != nil {
			return nil, err
		}
		db = stdlib.OpenDB(*cfg)
	default:
		return nil, fmt.Errorf("no driver for engine %q", t.Engine)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(2)
	db.SetConnMaxIdleTime(30 * time.Second)
	return db, nil
}

// Check runs a real query (SELECT 1) within the timeout.
func Check(ctx context.Context, db *sql.DB, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var one int
	if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return err
	}
	if one != 1 {
		return fmt.Errorf("SELECT 1 returned %d", one)
	}
	return nil
}
