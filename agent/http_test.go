package agent

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestStatusPage(t *testing.T) {
	dir := t.TempDir()
	h := startAgent(t, rulesConfig(t, dir, "", rdr("front", 0, "")+rdr("gate", 1, "enabled = false\n")))
	h.badge("front", "0A00000001")
	h.badge("front", "0A00000004")
	h.d.wait(t, 2)
	srv := httptest.NewServer(h.a.handler())
	defer srv.Close()

	res, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(res.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(page), "api/status") {
		t.Fatalf("page: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if res, err := http.Get(srv.URL + "/nope"); err != nil || res.StatusCode != 404 {
		t.Fatalf("unknown path: %v %v", res.StatusCode, err)
	}

	res, err = http.Get(srv.URL + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var ps PageStatus
	if err := json.NewDecoder(res.Body).Decode(&ps); err != nil {
		t.Fatal(err)
	}
	if ps.Device != "t1" || !ps.Running || len(ps.Readers) != 2 || ps.OpenEntries != 2 {
		t.Fatalf("status %+v", ps.Status)
	}
	if d := ps.Present.Departments; ps.Present.Total != 2 || len(d) != 2 || d[0].Name != "Bar" || d[0].People[0].EmployeeID != "A4" ||
		d[1].Name != "Shop" || d[1].People[0].EmployeeID != "A1" || d[1].People[0].Reader != "front" {
		t.Fatalf("present %+v", ps.Present)
	}
	joined := strings.Join(ps.Problems, "\n")
	if !strings.Contains(joined, "reader gate is suspended") || !strings.Contains(joined, "A4") {
		t.Fatalf("problems %q", ps.Problems)
	}
	if strings.Contains(string(page)+joined, "password") {
		t.Fatal("a secret's name on the page")
	}
}
