// The Metabase stand-in: the part of Metabase's HTTP API and start-up the
// platform relies on (see test/docker/images/CONTRACTS.md).
//
//   - its application database from MB_DB_TYPE/HOST/PORT/DBNAME/USER/PASS
//     (postgres, mysql; no MB_DB_TYPE keeps the state in memory, as H2 would
//     keep it in a file); while it connects, GET /api/health answers 503
//     {"status":"initializing"}; if it cannot connect within
//     BBAEGOK_METABASE_DB_WAIT_SECONDS (60) it exits 1, as Metabase fails to start;
//   - MB_ENCRYPTION_SECRET_KEY shorter than 16 characters stops the start; a
//     key different from the one the state was written with is logged as
//     Metabase logs it (encrypted details cannot be read);
//   - GET /api/health: 200 {"status":"ok"};
//   - GET /api/session/properties: "has-user-setup" and, before set-up, "setup-token";
//   - POST /api/setup: the first admin, logged in (answers {"id": <session>});
//     refuses a wrong token (403), a second set-up (403) and a password
//     Metabase's default ("normal") complexity refuses (400). A "database" in
//     the body is accepted and ignored, as Metabase's setup API does;
//   - POST /api/session: the admin's login ({"username", "password"}), 401 on
//     a wrong password;
//   - GET /api/database and POST /api/database (a data source: name, engine,
//     details), with the session in X-Metabase-Session (or the
//     metabase.SESSION cookie), 401 without; a database it cannot connect to
//     with the given details is refused (400), as Metabase checks the
//     connection.
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"

	"bbaegok-infra/test/docker/images/app/internal/datasource"
)

type state struct {
	mu            sync.Mutex
	ready         bool
	setUp         bool
	token         string
	adminEmail    string
	adminPassword string // sha256 of the admin's password
	appDB         *sql.DB
	engine        string // of the application database: postgres or mysql
	sessions      map[string]bool
	databases     []dataSource
}

type dataSource struct {
	ID     int    `json:"id"`
	Name   string `json:"name"`
	Engine string `json:"engine"`
	Target string `json:"-"`
}

func main() {
	log.SetFlags(log.LstdFlags | log.LUTC)
	key := os.Getenv("MB_ENCRYPTION_SECRET_KEY")
	if key != "" && len(key) < 16 {
		log.Fatalf("MB_ENCRYPTION_SECRET_KEY must be at least 16 characters.")
	}
	st := &state{token: uuid(), sessions: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/health", func(w http.ResponseWriter, r *http.Request) {
		st.mu.Lock()
		ready := st.ready
		st.mu.Unlock()
		if !ready {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "initializing", "progress": 0.5})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("GET /api/session/properties", func(w http.ResponseWriter, r *http.Request) {
		st.mu.Lock()
		defer st.mu.Unlock()
		props := map[string]any{"has-user-setup": st.setUp, "setup-token": nil, "version": map[string]any{"tag": os.Getenv("BBAEGOK_METABASE_VERSION")}, "site-url": os.Getenv("MB_SITE_URL")}
		if !st.setUp {
			props["setup-token"] = st.token
		}
		writeJSON(w, http.StatusOK, props)
	})
	mux.HandleFunc("POST /api/setup", st.setup)
	mux.HandleFunc("POST /api/session", st.login)
	mux.HandleFunc("GET /api/database", st.listDatabases)
	mux.HandleFunc("POST /api/database", st.addDatabase)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, "Unauthenticated")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<!doctype html><title>Metabase (test stand-in)</title>")
	})

	addr := net.JoinHostPort(envOr("MB_JETTY_HOST", "0.0.0.0"), envOr("MB_JETTY_PORT", "3000"))
	server := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := server.ListenAndServe(); err != nil && err != http.ErrServerClosed {
			log.Fatalf("Metabase could not listen on %s: %v", addr, err)
		}
	}()
	log.Printf("Starting Metabase stand-in %s on %s", os.Getenv("BBAEGOK_METABASE_VERSION"), addr)

	if err := st.initialise(key); err != nil {
		log.Fatalf("Metabase Initialization FAILED: %v", err)
	}
	log.Printf("Metabase Initialization COMPLETE")

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	log.Printf("Metabase Shutting Down ...")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = server.Shutdown(ctx)
}

// initialise connects to the application database and reads (or creates) the set-up state.
func (st *state) initialise(key string) error {
	dbType := os.Getenv("MB_DB_TYPE")
	if dbType == "" || dbType == "h2" {
		log.Printf("Using the in-memory application database (no MB_DB_TYPE)")
		st.mu.Lock()
		st.ready = true
		st.mu.Unlock()
		return nil
	}
	engine := map[string]string{"postgres": "postgres", "mysql": "mysql", "mariadb": "mysql"}[dbType]
	if engine == "" {
		return fmt.Errorf("MB_DB_TYPE %q is not supported by this stand-in (postgres, mysql)", dbType)
	}
	target := datasource.Target{Engine: engine, Host: os.Getenv("MB_DB_HOST"), Port: envOr("MB_DB_PORT", map[string]string{"postgres": "5432", "mysql": "3306"}[engine]), Database: os.Getenv("MB_DB_DBNAME"), User: os.Getenv("MB_DB_USER"), Password: os.Getenv("MB_DB_PASS")}
	db, err := datasource.Open(target)
	if err != nil {
		return err
	}
	timeout, _ := strconv.Atoi(envOr("BBAEGOK_METABASE_DB_WAIT_SECONDS", "60"))
	deadline := time.Now().Add(time.Duration(timeout) * time.Second)
	for {
		err = datasource.Check(context.Background(), db, 5*time.Second)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("unable to connect to the application database %s: %v", target, err)
		}
		log.Printf("Waiting for the application database %s: %v", target, err)
		time.Sleep(time.Second)
	}
	ctx := context.Background()
	for _, ddl := range []string{
		`CREATE TABLE IF NOT EXISTS metabase_standin_setup (id INT PRIMARY KEY, admin_email VARCHAR(254) NOT NULL, password_hash VARCHAR(64) NOT NULL, key_hash VARCHAR(64) NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS metabase_standin_database (id INT PRIMARY KEY, name VARCHAR(254) NOT NULL, engine VARCHAR(16) NOT NULL, target TEXT NOT NULL)`,
	} {
		if _, err := db.ExecContext(ctx, ddl); err != nil {
			return fmt.Errorf("cannot create the stand-in's tables: %v", err)
		}
	}
	var email, password, storedHash string
	switch err := db.QueryRowContext(ctx, `SELECT admin_email, password_hash, key_hash FROM metabase_standin_setup WHERE id = 1`).Scan(&email, &password, &storedHash); err {
	case nil:
		if storedHash != keyHash(key) {
			log.Printf("ERROR: Cannot decrypt encrypted details. Have you changed or forgot to set MB_ENCRYPTION_SECRET_KEY?")
		}
	case sql.ErrNoRows:
	default:
		return fmt.Errorf("cannot read the set-up state: %v", err)
	}
	rows, err := db.QueryContext(ctx, `SELECT id, name, engine, target FROM metabase_standin_database ORDER BY id`)
	if err != nil {
		return fmt.Errorf("cannot read the data sources: %v", err)
	}
	defer rows.Close()
	var databases []dataSource
	for rows.Next() {
		var d dataSource
		if err := rows.Scan(&d.ID, &d.Name, &d.Engine, &d.Target); err != nil {
			return fmt.Errorf("cannot read a data source: %v", err)
		}
		databases = append(databases, d)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.appDB, st.setUp, st.adminEmail, st.adminPassword, st.databases, st.ready = db, email != "", email, password, databases, true
	st.engine = engine
	return nil
}

// insert writes a row into the application database (none in memory).
func (st *state) insert(ctx context.Context, table string, columns []string, values ...any) error {
	if st.appDB == nil {
		return nil
	}
	marks := make([]string, len(values))
	for i := range marks {
		marks[i] = "?"
		if st.engine == "postgres" {
			marks[i] = fmt.Sprintf("$%d", i+1)
		}
	}
	_, err := st.appDB.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", table, strings.Join(columns, ", "), strings.Join(marks, ", ")), values...)
	return err
}

type setupRequest struct {
	Token string `json:"token"`
	User  struct {
		Email     string `json:"email"`
		Password  string `json:"password"`
		FirstName string `json:"first_name"`
		LastName  string `json:"last_name"`
	} `json:"user"`
	Prefs struct {
		SiteName string `json:"site_name"`
	} `json:"prefs"`
	// Accepted and ignored, as Metabase's setup API does (setup_rest/api.clj:
	// an optional key its handler never reads): a data source is POST /api/database.
	Database json.RawMessage `json:"database"`
}

func (st *state) setup(w http.ResponseWriter, r *http.Request) {
	var req setupRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": "malformed JSON: " + err.Error()})
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.ready {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"message": "Metabase is still initializing"})
		return
	}
	if st.setUp {
		writeJSON(w, http.StatusForbidden, map[string]any{"message": "The /api/setup route can only be used to create the first user, however a user currently exists."})
		return
	}
	if req.Token != st.token {
		writeJSON(w, http.StatusForbidden, map[string]any{"message": "Token does not match the setup token."})
		return
	}
	if !strings.Contains(req.User.Email, "@") {
		writeJSON(w, http.StatusBadRequest, map[string]any{"errors": map[string]string{"email": "value must be a valid email address."}})
		return
	}
	if msg := passwordProblem(req.User.Password); msg != "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"errors": map[string]string{"password": msg}})
		return
	}
	if strings.TrimSpace(req.Prefs.SiteName) == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"errors": map[string]string{"prefs": "site_name: value must be a non-blank string."}})
		return
	}
	password := keyHash(req.User.Password)
	if err := st.insert(r.Context(), "metabase_standin_setup", []string{"id", "admin_email", "password_hash", "key_hash"}, 1, req.User.Email, password, keyHash(os.Getenv("MB_ENCRYPTION_SECRET_KEY"))); err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]any{"message": fmt.Sprintf("cannot store the set-up: %v", err)})
		return
	}
	st.setUp, st.adminEmail, st.adminPassword = true, req.User.Email, password
	log.Printf("Set up: admin %s", req.User.Email)
	writeJSON(w, http.StatusOK, map[string]any{"id": st.newSession()})
}

// login: POST /api/session with the admin's email and password.
func (st *state) login(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": "malformed JSON: " + err.Error()})
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.setUp || !strings.EqualFold(req.Username, st.adminEmail) || keyHash(req.Password) != st.adminPassword {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"errors": map[string]string{"password": "did not match stored password"}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": st.newSession()})
}

// newSession: a session id, valid until the process ends. Callers hold st.mu.
func (st *state) newSession() string {
	id := uuid()
	st.sessions[id] = true
	return id
}

// authenticated: the request carries a live session (header or cookie); else 401. Callers hold st.mu.
func (st *state) authenticated(w http.ResponseWriter, r *http.Request) bool {
	id := r.Header.Get("X-Metabase-Session")
	if c, err := r.Cookie("metabase.SESSION"); id == "" && err == nil {
		id = c.Value
	}
	if !st.sessions[id] {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, "Unauthenticated")
		return false
	}
	return true
}

func (st *state) listDatabases(w http.ResponseWriter, r *http.Request) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.authenticated(w, r) {
		return
	}
	data := st.databases
	if data == nil {
		data = []dataSource{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "total": len(data)})
}

func (st *state) addDatabase(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name    string `json:"name"`
		Engine  string `json:"engine"`
		Details *struct {
			Host     string          `json:"host"`
			Port     json.RawMessage `json:"port"`
			DBName   string          `json:"dbname"`
			User     string          `json:"user"`
			Password string          `json:"password"`
		} `json:"details"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": "malformed JSON: " + err.Error()})
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.authenticated(w, r) {
		return
	}
	engine := map[string]string{"mysql": "mysql", "postgres": "postgres"}[req.Engine]
	switch {
	case strings.TrimSpace(req.Name) == "":
		writeJSON(w, http.StatusBadRequest, map[string]any{"errors": map[string]string{"name": "value must be a non-blank string."}})
		return
	case engine == "":
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": fmt.Sprintf("engine %q is not supported by this stand-in (mysql, postgres)", req.Engine)})
		return
	case req.Details == nil:
		writeJSON(w, http.StatusBadRequest, map[string]any{"errors": map[string]string{"details": "value must be a map."}})
		return
	}
	d := req.Details
	target := datasource.Target{Engine: engine, Host: d.Host, Port: strings.Trim(string(d.Port), `"`), Database: d.DBName, User: d.User, Password: d.Password}
	db, err := datasource.Open(target)
	if err == nil {
		err = datasource.Check(r.Context(), db, 10*time.Second)
		db.Close()
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": fmt.Sprintf("Couldn't connect to the database %s: %v", target, err), "errors": map[string]string{"dbname": "check your connection string"}})
		return
	}
	source := dataSource{ID: len(st.databases) + 1, Name: req.Name, Engine: req.Engine, Target: target.String()}
	if err := st.insert(r.Context(), "metabase_standin_database", []string{"id", "name", "engine", "target"}, source.ID, source.Name, source.Engine, source.Target); err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]any{"message": fmt.Sprintf("cannot store the data source: %v", err)})
		return
	}
	st.databases = append(st.databases, source)
	log.Printf("Data source %s: %s", source.Name, source.Target)
	writeJSON(w, http.StatusOK, source)
}

// passwordProblem applies Metabase's password complexity (MB_PASSWORD_COMPLEXITY:
// weak, normal (the default: 6 characters, one a digit) or strong;
// MB_PASSWORD_LENGTH overrides the length). Its list of common passwords is
// not applied here.
func passwordProblem(password string) string {
	var total, lower, upper, digit, special int
	for _, c := range password {
		total++
		switch {
		case unicode.IsLower(c):
			lower++
		case unicode.IsUpper(c):
			upper++
		case unicode.IsDigit(c):
			digit++
		default:
			special++
		}
	}
	want := map[string][5]int{ // total, lower, upper, digit, special
		"weak":   {6, 0, 0, 0, 0},
		"normal": {6, 0, 0, 1, 0},
		"strong": {8, 2, 2, 1, 1},
	}[envOr("MB_PASSWORD_COMPLEXITY", "normal")]
	if n, err := strconv.Atoi(os.Getenv("MB_PASSWORD_LENGTH")); err == nil {
		want[0] = n
	}
	if total < want[0] || lower < want[1] || upper < want[2] || digit < want[3] || special < want[4] {
		return "password is too common."
	}
	return ""
}

// keyHash marks which encryption key the state was written with (empty: none); also the admin password's hash.
func keyHash(key string) string {
	if key == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

func uuid() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
