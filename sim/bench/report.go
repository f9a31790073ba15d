package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"github.com/punchclock/punchclock/internal/mosquitto"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// A Row is one figure of the table.
type Row struct {
	Figure   string
	Measured string
	// Limit is the machine's own limit (or floor) for the figure,
	// measured in the same run; empty when there is none.
	Limit string
	Ratio string // measured against Limit, as the goal states it
	Goal  string
	Pass  bool
	// Bound says, for a missed goal, what bounds the figure.
	Bound string
}

// A Step is one phase of the run and how long it took.
type Step struct {
	Name string
	Took time.Duration
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int
	CPU       string
	Kernel    string
	Arch      string
	Disk      string // device and file system of the work directory
	Go        string
	Mosquitto string
}

func (m Machine) String() string {
	return fmt.Sprintf("%d × %s, Linux %s %s; disk %s; %s; %s", m.CPUs, m.CPU, m.Kernel, m.Arch, m.Disk, m.Go, m.Mosquitto)
}

// Report is the result of a run.
type Report struct {
	Quick   bool
	Started time.Time
	Took    time.Duration
	Machine Machine
	Rows    []Row
	Steps   []Step
	// Notes are facts measured on the way (prefill rates, counts) that
	// help read the table.
	Notes []string
}

func (rep *Report) add(row Row) { rep.Rows = append(rep.Rows, row) }

func (rep *Report) note(format string, args ...any) {
	rep.Notes = append(rep.Notes, fmt.Sprintf(format, args...))
}

// Missed returns the rows whose goal was missed.
func (rep *Report) Missed() []Row {
	var out []Row
	for _, r := range rep.Rows {
		if !r.Pass {
			out = append(out, r)
		}
	}
	return out
}

// WriteTable prints the report as Markdown: a header, the table (padded
// so that it also reads as plain text), the bounds of missed goals, the
// notes and the time each step took.
func (rep *Report) WriteTable(w io.Writer) error {
	var b bytes.Buffer
	mode := "full run"
	if rep.Quick {
		mode = "QUICK run (small counts: a smoke test, not comparable with the goals)"
	}
	fmt.Fprintf(&b, "punchclock bench, %s, %s, took %s\n\n", rep.Started.Format("2006-01-02 15:04 MST"), mode, rep.Took.Round(time.Second))
	fmt.Fprintf(&b, "machine: %s\n\n", rep.Machine)
	head := []string{"figure", "measured", "machine limit (same run)", "ratio", "goal", "result"}
	rows := [][]string{head}
	for _, r := range rep.Rows {
		res := "pass"
		if !r.Pass {
			res = "**MISS**"
		}
		rows = append(rows, []string{r.Figure, r.Measured, orDash(r.Limit), orDash(r.Ratio), r.Goal, res})
	}
	widths := make([]int, len(head))
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	line := func(cells []string) {
		b.WriteString("|")
		for i, c := range cells {
			fmt.Fprintf(&b, " %s%s |", c, strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)))
		}
		b.WriteString("\n")
	}
	line(rows[0])
	sep := make([]string, len(head))
	for i := range sep {
		sep[i] = strings.Repeat("-", widths[i])
	}
	line(sep)
	for _, row := range rows[1:] {
		line(row)
	}
	if missed := rep.Missed(); len(missed) > 0 {
		b.WriteString("\nMissed goals and what bounds them:\n")
		for _, r := range missed {
			fmt.Fprintf(&b, "- %s: %s\n", r.Figure, orDash(r.Bound))
		}
	}
	if len(rep.Notes) > 0 {
		b.WriteString("\nNotes:\n")
		for _, n := range rep.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	b.WriteString("\nSteps:")
	for _, s := range rep.Steps {
		fmt.Fprintf(&b, " %s %s;", s.Name, s.Took.Round(100*time.Millisecond))
	}
	b.WriteString("\n")
	_, err := w.Write(b.Bytes())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func describeMachine(dir, mosquittoBin string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Arch: runtime.GOARCH, Go: runtime.Version(), CPU: "unknown", Disk: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			k = strings.TrimSpace(k)
			if ok && (k == "model name" || k == "Model" || k == "Hardware") {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.Disk = diskOf(dir)
	if bin, err := mosquitto.Find(mosquittoBin); err == nil {
		out, _ := exec.Command(bin, "-h").CombinedOutput() // -h exits non-zero
		first, _, _ := strings.Cut(string(out), "\n")
		m.Mosquitto = strings.TrimSpace(first)
	}
	return m
}

// diskOf names the device and file system holding dir, from the longest
// mount point in /proc/self/mounts that contains it.
func diskOf(dir string) string {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return "unknown"
	}
	best, desc := "", "unknown"
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 {
			continue
		}
		mp := f[1]
		if (dir == mp || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best, desc = mp, fmt.Sprintf("%s %s on %s", f[0], f[2], mp)
		}
	}
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) == nil {
		desc += fmt.Sprintf(" (%.0f GiB free)", float64(st.Bavail)*float64(st.Bsize)/(1<<30))
	}
	return desc
}
