// A constant-rate HTTP/1.1 load generator for bench:proxy, free of
// coordinated omission: request i is due at start + i/rate whatever happened
// before it, and its latency is counted from that due time, not from when a
// connection was free to send it. A stalled proxy therefore shows as many
// slow requests (every one that waited), as a user would see it, instead of
// one slow request and a pause in sending (what a closed-loop tool like wrk
// reports).
//
// Each of -connections workers holds one kept-alive connection (TLS without
// verification for https URLs, HTTP/2 off) and takes due times from one queue.
// Output: one JSON object on stdout with every latency in microseconds; the
// bench (bench/proxy/stats.ts) computes the percentiles.
package main

import (
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

type result struct {
	Rate        float64 `json:"rate"`
	Seconds     float64 `json:"seconds"`
	Connections int     `json:"connections"`
	Sent        int     `json:"sent"`
	Errors      int     `json:"errors"`
	FirstError  string  `json:"firstError,omitempty"`
	LatenciesUs []int64 `json:"latenciesUs"`
}

func main() {
	url := flag.String("url", "", "URL to request")
	rate := flag.Float64("rate", 2000, "requests per second")
	seconds := flag.Float64("seconds", 10, "how long to send")
	connections := flag.Int("connections", 32, "kept-alive connections")
	serverName := flag.String("servername", "localhost", "TLS server name")
	flag.Parse()
	if *url == "" || *rate <= 0 || *seconds <= 0 || *connections <= 0 {
		fmt.Fprintln(os.Stderr, "loadgen: -url, and positive -rate, -seconds, -connections are required")
		os.Exit(2)
	}

	clients := make([]*http.Client, *connections)
	for i := range clients {
		clients[i] = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{InsecureSkipVerify: true, ServerName: *serverName},
			TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
			MaxIdleConnsPerHost: 1,
			MaxConnsPerHost:     1,
			DisableCompression:  true,
		}}
	}
	get := func(c *http.Client) error {
		resp, err := c.Get(*url)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		return err
	}
	// Open (and warm) every connection before the clock starts.
	for _, c := range clients {
		if err := get(c); err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: warm-up request to %s failed: %v\n", *url, err)
			os.Exit(1)
		}
	}

	total := int(*rate * *seconds)
	interval := time.Duration(float64(time.Second) / *rate)
	due := make(chan time.Time, total)
	out := result{Rate: *rate, Seconds: *seconds, Connections: *connections, LatenciesUs: make([]int64, 0, total)}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func(c *http.Client) {
			defer wg.Done()
			for at := range due {
				err := get(c)
				latency := time.Since(at)
				mu.Lock()
				if err != nil {
					if out.Errors == 0 {
						out.FirstError = err.Error()
					}
					out.Errors++
				} else {
					out.LatenciesUs = append(out.LatenciesUs, latency.Microseconds())
				}
				mu.Unlock()
			}
		}(c)
	}
	start := time.Now()
	for i := 0; i < total; i++ {
		at := start.Add(time.Duration(i) * interval)
		if wait := time.Until(at); wait > 0 {
			time.Sleep(wait)
		}
		due <- at
		out.Sent++
	}
	close(due)
	wg.Wait()
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(1)
	}
}
