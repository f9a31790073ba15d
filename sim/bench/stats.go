package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// dist is a sorted sample of durations.
type dist []time.Duration

func newDist(d []time.Duration) dist {
	s := slices.Clone(d)
	slices.Sort(s)
	return s
}

// pct returns the p-th percentile (nearest rank), p in (0, 100].
func (d dist) pct(p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(float64(len(d))*p/100+0.999999) - 1
	return d[max(0, min(i, len(d)-1))]
}

// procIO returns write_bytes from /proc/<pid>/io ("self" for this
// process): bytes this process caused to be sent to storage.
func procIO(pid string) (int64, error) {
	return procField("/proc/"+pid+"/io", "write_bytes:")
}

// procRSS returns VmRSS from /proc/<pid>/status, in bytes.
func procRSS(pid string) (int64, error) {
	kb, err := procField("/proc/"+pid+"/status", "VmRSS:")
	return kb << 10, err
}

// procRssAnon returns RssAnon from /proc/<pid>/status, in bytes: the
// resident memory that is the process's own, without the pages of mapped
// files (bbolt's mmap of the database) that the kernel can drop.
func procRssAnon(pid string) (int64, error) {
	kb, err := procField("/proc/"+pid+"/status", "RssAnon:")
	return kb << 10, err
}

func procField(path, key string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("bench: no %s in %s", key, path)
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + " ms"
}

func mib(b int64) string {
	return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) + " MiB"
}

func kib(b float64) string {
	return strconv.FormatFloat(b/1024, 'f', 1, 64) + " KiB"
}

func perSec(v float64) string {
	return strconv.FormatFloat(v, 'f', 0, 64) + "/s"
}
