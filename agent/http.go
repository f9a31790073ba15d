package agent

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/punchclock/punchclock/store"
)

// statusPage is the status page: static, embedded, reading /api/status.
//
//go:embed page/index.html
var statusPage []byte

// PageStatus is what the status page shows: the status, who is in, and
// the problems a technician should see.
type PageStatus struct {
	Status
	Present  Present  `json:"present"`
	Problems []string `json:"problems"`
}

// pageStatus gathers what the page shows.
func (a *Agent) pageStatus() (PageStatus, error) {
	st, err := a.Status()
	ps := PageStatus{Status: st, Problems: []string{}}
	if err != nil {
		return ps, err
	}
	if ps.Present, err = a.Present(); err != nil {
		return ps, err
	}
	for _, p := range []struct{ what, msg string }{
		{"alarm", st.Alarm}, {"roster", st.RosterError}, {"storage", st.StorageWarning},
	} {
		if p.msg != "" {
			ps.Problems = append(ps.Problems, p.what+": "+p.msg)
		}
	}
	for _, r := range st.Readers {
		if r.State != "online" {
			ps.Problems = append(ps.Problems, fmt.Sprintf("reader %s is %s", r.Name, r.State))
		}
	}
	if len(st.NoPayrollNo) > 0 {
		ps.Problems = append(ps.Problems, fmt.Sprintf("employees without a payroll number: %v", st.NoPayrollNo))
	}
	// The last dead letters, newest first, with the connector's words.
	var dead []string
	err = a.db.DeadLetters(time.Time{}, func(d store.DeadLetter) error {
		dead = append(dead, fmt.Sprintf("dead letter %s at %s: %s", d.ID, d.At.In(a.cfg.Location).Format(time.RFC3339), d.Error))
		return nil
	})
	slices.Reverse(dead)
	ps.Problems = append(ps.Problems, dead[:min(len(dead), 10)]...)
	return ps, err
}

// handler serves the status page at / and its JSON at /api/status.
func (a *Agent) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
		w.Write(statusPage)
	})
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		ps, err := a.pageStatus()
		if err != nil {
			a.log.Error("status page", "err", err)
			http.Error(w, "status: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(ps)
	})
	return mux
}

// serveHTTP serves the status page on ln until ctx is done. A page that
// cannot be served never stops the terminal.
func (a *Agent) serveHTTP(ctx context.Context, ln net.Listener) {
	srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		a.log.Error("status page stopped", "err", err)
	}
}
