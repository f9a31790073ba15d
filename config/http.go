package config

import (
	"net"
	"strconv"
)

// HTTP configures the local status page.
type HTTP struct {
	// Listen is the address of the status page, "host:port"; empty
	// disables it. Bound to localhost by default: a technician reaches
	// it over SSH (ssh -L 8080:127.0.0.1:8080 pi@terminal).
	Listen string `toml:"listen"`
}

// DefaultHTTPListen is where the status page listens unless told.
const DefaultHTTPListen = "127.0.0.1:8080"

func (h HTTP) validate(bad func(key, format string, args ...any)) {
	if h.Listen == "" {
		return
	}
	host, port, err := net.SplitHostPort(h.Listen)
	if err != nil {
		bad("http.listen", "%q is not host:port like \"127.0.0.1:8080\" (empty disables the page)", h.Listen)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		bad("http.listen", "%q: port %q is not a number from 0 to 65535", h.Listen, port)
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		bad("http.listen", "%q: host %q is not an IP address or localhost", h.Listen, host)
	}
}
