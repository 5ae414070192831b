// The write load of bench:backup:write-load: -connections connections to the
// primary, each running short transactions (INSERT one event, UPDATE one
// random order, COMMIT). With -rate 0, back to back, as fast as the server
// lets them: a closed loop, where a slower primary shows as fewer
// transactions per second and longer ones. With -rate R (transactions per
// second in all), each connection's transaction i is due at start + i·N/R
// whatever happened before it, and its time counts from when it was due: a
// primary that stalls shows as every transaction that waited, as the app's
// users would see it, not as a pause in sending.
//
// Output, one line per transaction on stdout, for the bench to cut into
// windows (bench/backup/write-load-stats.ts):
//
//	<end, µs since the Unix epoch> <due…COMMIT µs> <COMMIT µs>
//	E <end µs> <error>        a failed transaction; the loop goes on
//
// It runs until SIGTERM or SIGINT, then flushes its output and exits 0. The
// DSN comes from WRITE_LOAD_DSN: it holds a password, never an argument.
package main

import (
	"bufio"
	"context"
	"database/sql"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/go-sql-driver/mysql"
)

var statuses = []string{"paid", "shipped", "delivered", "cancelled", "refunded"}

func main() {
	connections := flag.Int("connections", 4, "connections, each running one transaction at a time")
	rate := flag.Float64("rate", 0, "transactions per second in all; 0: as fast as the server lets them")
	flag.Parse()
	dsn := os.Getenv("WRITE_LOAD_DSN")
	if dsn == "" || *connections <= 0 || *rate < 0 {
		fmt.Fprintln(os.Stderr, "write-load: WRITE_LOAD_DSN must be set, -connections positive and -rate 0 or more")
		os.Exit(2)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		fail("opening the database", err)
	}
	db.SetMaxOpenConns(*connections + 1)
	var maxEvent, maxOrder int64
	if err := db.QueryRow("SELECT COALESCE(MAX(id), 0) FROM events").Scan(&maxEvent); err != nil {
		fail("reading the highest event id", err)
	}
	if err := db.QueryRow("SELECT COALESCE(MAX(id), 0) FROM orders").Scan(&maxOrder); err != nil || maxOrder == 0 {
		fail("reading the highest order id (the load updates existing orders)", err)
	}

	lines := make(chan string, 1<<16)
	written := make(chan struct{})
	go func() {
		out := bufio.NewWriterSize(os.Stdout, 1<<20)
		for line := range lines {
			out.WriteString(line)
		}
		out.Flush()
		close(written)
	}()

	stop := make(chan struct{})
	began := time.Now()
	var workers sync.WaitGroup
	for w := 0; w < *connections; w++ {
		workers.Add(1)
		go func(w int) {
			defer workers.Done()
			random := rand.New(rand.NewPCG(uint64(w)+1, 20261202))
			// Event ids interleave by worker, above the data's: never a duplicate key.
			next := maxEvent + 1 + int64(w)
			var conn *sql.Conn
			var interval time.Duration
			if *rate > 0 {
				interval = time.Duration(float64(*connections) / *rate * float64(time.Second))
			}
			// Connections start spread over one interval, not all at once.
			due := began.Add(interval * time.Duration(w) / time.Duration(*connections))
			for {
				select {
				case <-stop:
					if conn != nil {
						conn.Close()
					}
					return
				default:
				}
				if conn == nil {
					c, err := db.Conn(context.Background())
					if err != nil {
						lines <- fmt.Sprintf("E %d %s\n", time.Now().UnixMicro(), oneLine(err))
						time.Sleep(100 * time.Millisecond)
						continue
					}
					conn = c
				}
				start := time.Now()
				if interval > 0 {
					if wait := time.Until(due); wait > 0 {
						time.Sleep(wait)
					}
					start = due
					due = due.Add(interval)
				}
				commitUs, err := transaction(conn, next, 1+random.Int64N(maxOrder), random)
				end := time.Now()
				next += int64(*connections)
				if err != nil {
					lines <- fmt.Sprintf("E %d %s\n", end.UnixMicro(), oneLine(err))
					// The connection may be broken: the next transaction takes a new one.
					conn.Close()
					conn = nil
					continue
				}
				lines <- fmt.Sprintf("%d %d %d\n", end.UnixMicro(), end.Sub(start).Microseconds(), commitUs)
			}
		}(w)
	}

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	<-signals
	close(stop)
	workers.Wait()
	close(lines)
	<-written
}

// One short transaction as the app writes: an event for an order and the order's status.
func transaction(conn *sql.Conn, eventID, orderID int64, random *rand.Rand) (commitUs int64, err error) {
	ctx := context.Background()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	payload := fmt.Sprintf(`{"message":"write load","ref":"%016x","amount":%d}`, random.Uint64(), random.IntN(1000000))
	if _, err = tx.Exec("INSERT INTO events (id, order_id, kind, at, ip, payload) VALUES (?, ?, 'support_message', NOW(3), '127.0.0.1', ?)", eventID, orderID, payload); err != nil {
		tx.Rollback()
		return 0, err
	}
	if _, err = tx.Exec("UPDATE orders SET status = ?, note = ? WHERE id = ?", statuses[random.IntN(len(statuses))], fmt.Sprintf("write load %d", eventID), orderID); err != nil {
		tx.Rollback()
		return 0, err
	}
	committing := time.Now()
	if err = tx.Commit(); err != nil {
		return 0, err
	}
	return time.Since(committing).Microseconds(), nil
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "write-load: %s failed: %v\n", what, err)
	os.Exit(1)
}
