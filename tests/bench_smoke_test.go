package tests

import (
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The table groups of the benchmark (bench_spec): the smoke run must produce rows for each.
var benchGroups = []string{"roundtrip", "blocking", "bandwidth", "lifecycle", "abi", "startup", "gopeer", "ring"}

// TestBenchSmoke runs the benchmark driver with -smoke (every engine, a few iterations, one run)
// against the library under test. It checks the harness, never a timing: every group of the
// table has rows, every number in results.json is finite and positive, and results.csv holds the
// same rows.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs every benchmark engine")
	}
	out := t.TempDir()
	start := time.Now()
	r := runProgram(t, 5*time.Minute, root, nil, "go", "run", "./bench/run", "-smoke", "-lib", libDir, "-out", out)
	if r.code != 0 {
		t.Fatalf("go run ./bench/run -smoke exited %d:\n%s", r.code, r.out)
	}
	t.Logf("smoke run took %.1fs", time.Since(start).Seconds())

	// The table: a "[group] title" line, then that group's rows (lines with " | ").
	tableRows := map[string]int{}
	group := ""
	for _, line := range strings.Split(r.out, "\n") {
		if strings.HasPrefix(line, "[") && strings.Contains(line, "] ") {
			group = line[1:strings.Index(line, "]")]
			continue
		}
		if group != "" && strings.Contains(line, " | ") {
			tableRows[group]++
		}
	}
	total := 0
	for _, g := range benchGroups {
		if tableRows[g] == 0 {
			t.Errorf("the table has no row in group %q", g)
		}
		total += tableRows[g]
	}

	var rep struct {
		Machine struct {
			CPUModel      string `json:"cpu_model"`
			Cores         int    `json:"cores"`
			Kernel        string `json:"kernel"`
			GoVersion     string `json:"go_version"`
			CCVersion     string `json:"cc_version"`
			PythonVersion string `json:"python_version"`
			Date          string `json:"date"`
		} `json:"machine"`
		Raw  []map[string]any `json:"raw"`
		Rows []struct {
			Group       string  `json:"group"`
			Measurement string  `json:"measurement"`
			MmipcID     string  `json:"mmipc_id"`
			BaselineID  string  `json:"baseline_id"`
			MmipcP50    float64 `json:"mmipc_p50"`
			MmipcP99    float64 `json:"mmipc_p99"`
			BaselineP50 float64 `json:"baseline_p50"`
			BaselineP99 float64 `json:"baseline_p99"`
			Ratio       float64 `json:"ratio"`
			Unit        string  `json:"unit"`
			Runs        int     `json:"runs"`
			Status      string  `json:"status"`
		} `json:"rows"`
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	m := rep.Machine
	for name, v := range map[string]string{"cpu_model": m.CPUModel, "kernel": m.Kernel, "go_version": m.GoVersion,
		"cc_version": m.CCVersion, "python_version": m.PythonVersion} {
		if strings.TrimSpace(v) == "" {
			t.Errorf("results.json: machine.%s is empty", name)
		}
	}
	if m.Cores < 1 {
		t.Errorf("results.json: machine.cores = %d", m.Cores)
	}
	if _, err := time.Parse(time.RFC3339, m.Date); err != nil {
		t.Errorf("results.json: machine.date %q: %v", m.Date, err)
	}
	if len(rep.Raw) == 0 {
		t.Error("results.json: no raw results")
	}
	if len(rep.Rows) != total {
		t.Errorf("results.json has %d rows, the table %d", len(rep.Rows), total)
	}
	jsonGroups := map[string]int{}
	for _, row := range rep.Rows {
		jsonGroups[row.Group]++
		where := row.Group + ": " + row.Measurement + " vs " + row.BaselineID
		if row.Status != "ok" || row.MmipcID == "" || row.BaselineID == "" || row.Runs < 1 {
			t.Errorf("%s: status %q, ids %q/%q, runs %d", where, row.Status, row.MmipcID, row.BaselineID, row.Runs)
		}
		if row.Unit != "ns" && row.Unit != "KiB" {
			t.Errorf("%s: unit %q", where, row.Unit)
		}
		for name, v := range map[string]float64{"mmipc_p50": row.MmipcP50, "mmipc_p99": row.MmipcP99,
			"baseline_p50": row.BaselineP50, "baseline_p99": row.BaselineP99, "ratio": row.Ratio} {
			if math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
				t.Errorf("%s: %s = %v, want a finite positive number", where, name, v)
			}
		}
	}
	for _, g := range benchGroups {
		if jsonGroups[g] == 0 {
			t.Errorf("results.json has no row in group %q", g)
		}
	}

	f, err := os.Open(filepath.Join(out, "results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("results.csv: %v", err)
	}
	if len(recs) < 1 || len(recs[0]) < 5 || recs[0][0] != "group" {
		t.Fatalf("results.csv: no header: %q", recs)
	}
	if len(recs)-1 != len(rep.Rows) {
		t.Errorf("results.csv has %d rows, results.json %d", len(recs)-1, len(rep.Rows))
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	for _, rec := range recs[1:] {
		for _, h := range []string{"mmipc_p50", "baseline_p50", "ratio"} {
			i, ok := col[h]
			if !ok {
				t.Fatalf("results.csv: no column %q in %q", h, recs[0])
			}
			if v, err := strconv.ParseFloat(rec[i], 64); err != nil || !(v > 0) || math.IsInf(v, 0) {
				t.Errorf("results.csv: %s = %q in %q", h, rec[i], rec)
			}
		}
	}

	// A benchmark that does not notice wrong data measures nothing: the engines the driver just
	// built must fail when one byte of one message is flipped (bench/ENGINES.md, self-test flags),
	// and the ring engines also when a message goes missing.
	bin := filepath.Join(out, "bin")
	gopeer := filepath.Join(bin, "gopeer")
	ringTput := []string{"ring", "tput", "--size", "64", "--batch", "100", "--batches", "2", "--warmup", "10"}
	for _, c := range [][]string{
		append(slices.Clone(ringTput), "--mech", "mmipc-ring", "--drop-at", "57"),
		append(slices.Clone(ringTput), "--mech", "raw-spsc", "--drop-at", "57"),
		append(slices.Clone(ringTput), "--mech", "mmipc-ring", "--peer", gopeer, "--peer-role", "recv", "--drop-at", "57"),
	} {
		dir := regionDir(t)
		r := runProgram(t, time.Minute, dir, []string{"MMIPC_DIR=" + dir}, filepath.Join(bin, c[0]), c[1:]...)
		if r.code != 1 || !strings.Contains(r.out, "lost, duplicated or reordered") || strings.Contains(r.out, "RESULT ") {
			t.Errorf("%s with one message dropped: exit %d (want 1, \"lost, duplicated or reordered\" and no RESULT):\n%s", c, r.code, r.out)
		}
	}
	py := []string{"PYTHONPATH=" + filepath.Join(root, "python"), "MMIPC_LIB=" + filepath.Join(libDir, "libmmipc.so")}
	for _, c := range [][]string{
		{"ring", "rt", "--size", "64", "--iters", "20", "--warmup", "1", "--corrupt-ping", "5"},
		{"ring", "rt", "--size", "64", "--iters", "20", "--warmup", "1", "--corrupt-ping", "5", "--peer", gopeer},
		{"ring", "rt", "--size", "64", "--iters", "20", "--warmup", "1", "--corrupt-pong", "5", "--peer", gopeer},
		append(slices.Clone(ringTput), "--mech", "mmipc-ring", "--corrupt-at", "57"),
		append(slices.Clone(ringTput), "--mech", "uds", "--corrupt-at", "57"),
		append(slices.Clone(ringTput), "--mech", "mmipc-ring", "--peer", gopeer, "--peer-role", "send", "--corrupt-at", "57"),
		append(slices.Clone(ringTput), "--mech", "mmipc-ring", "--peer", gopeer, "--peer-role", "recv", "--corrupt-at", "57"),
		{"python3", filepath.Join(root, "bench", "py", "ring.py"), "--mech", "mmipc-ring", "--batch", "50", "--batches", "2",
			"--warmup", "10", "--corrupt-at", "57"},
		{"python3", filepath.Join(root, "bench", "py", "ring.py"), "--mech", "mp-queue", "--batch", "50", "--batches", "2",
			"--warmup", "10", "--corrupt-at", "57"},
	} {
		dir := regionDir(t)
		prog := c[0]
		if prog != "python3" {
			prog = filepath.Join(bin, prog)
		}
		r := runProgram(t, time.Minute, dir, append([]string{"MMIPC_DIR=" + dir}, py...), prog, c[1:]...)
		if r.code != 1 || !strings.Contains(r.out, "wrong data") || strings.Contains(r.out, "RESULT ") {
			t.Errorf("%s with one corrupted message: exit %d (want 1, \"wrong data\" and no RESULT):\n%s", c, r.code, r.out)
		}
		if left, _ := os.ReadDir(dir); len(left) > 0 {
			t.Errorf("%s left %d files in its region directory after failing (want none): %s", c, len(left), left[0].Name())
		}
	}
	for _, c := range [][]string{
		{"pingpong", "--mech", "mmipc-spin", "--size", "64", "--iters", "20", "--warmup", "1", "--runs", "1", "--corrupt-ping", "5"},
		{"pingpong", "--mech", "mmipc-spin", "--size", "64", "--iters", "20", "--warmup", "1", "--runs", "1", "--corrupt-ping", "5",
			"--peer", filepath.Join(bin, "gopeer")},
		{"pingpong", "--mech", "uds", "--size", "64", "--iters", "20", "--warmup", "1", "--runs", "1", "--corrupt-pong", "5"},
		{"bandwidth", "--mech", "mmipc", "--size", "65536", "--iters", "5", "--runs", "1", "--corrupt-at", "3"},
		{"bandwidth", "--mech", "mmipc", "--size", "65536", "--iters", "5", "--runs", "1", "--corrupt-at", "3",
			"--peer", filepath.Join(bin, "gopeer")},
	} {
		dir := regionDir(t)
		r := runProgram(t, time.Minute, dir, []string{"MMIPC_DIR=" + dir}, filepath.Join(bin, c[0]), c[1:]...)
		if r.code != 1 || !strings.Contains(r.out, "wrong data") || strings.Contains(r.out, "RESULT ") {
			t.Errorf("%s with one corrupted message: exit %d (want 1, \"wrong data\" and no RESULT):\n%s", c, r.code, r.out)
		}
	}
}

// The driver is standard library only (plus this module), so that the smoke test, and so
// ./build.sh test, need no download: gonum belongs to the separate bench/plot module.
func TestBenchDriverStdlibOnly(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./bench/run")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list printed nothing, not even the driver itself")
	}
	for _, d := range deps {
		if d != "github.com/mmipc/mmipc/bench/run" {
			t.Errorf("bench/run depends on %s: the driver must use the standard library only", d)
		}
	}
}
