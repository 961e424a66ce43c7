package tests

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mmipc/mmipc/mmipc"
)

// TestHardeningLoad runs 18 processes, six each in C, Go and Python (tests/c/load_peer.c,
// tests/loadpeer, tests/python_load_peer.py; behaviour specified in tests/loadpeer/main.go), on 8
// rings for MMIPC_LOAD_SECONDS (30) seconds: one receiver per ring, one sender on six rings and
// two on the other two (whose send side turns shared), so that every sender->receiver language
// pairing appears. Senders send numbered, checksummed messages of random lengths as fast as the
// rings take them (half of them written in place with reserve/commit); receivers verify each one
// (hmsg format: length, checksum, payload; per sender: no loss, no repeat, in order) until the end
// markers. The test checks:
//
//   - exactly: per sender, messages sent == messages its receiver got, and the last seq;
//   - no deadlock: every second it reads each ring's head (Dir.RingStat); a ring whose receiver
//     still runs and whose head did not move for 5 s fails the test, with the ring's state (before
//     a ring first moves, its peers are starting: that may take up to 30 s on a loaded machine);
//   - every process exits, with success, within the duration + 15 s;
//   - stable memory: VmRSS of every peer, sampled at 5 s (a third of the duration if shorter; and
//     not before its ring moved) and at its last sample before exiting, may grow by at most 4 MiB for C (its message path
//     allocates nothing) and 16 MiB for Go and Python (a garbage-collected heap and an allocator
//     that keep freed memory around for a while; a leak of even 100 bytes per message is far above
//     that over hundreds of thousands of messages);
//   - at the end every ring is empty (head == tail, no message), and the send side of exactly the
//     two-sender rings is shared.
//
// MMIPC_LOAD_SEED sets the senders' seed (else the time; it is logged).
func TestHardeningLoad(t *testing.T) {
	seconds := hardeningEnvInt(t, "MMIPC_LOAD_SECONDS", 30)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("MMIPC_LOAD_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("MMIPC_LOAD_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("%d s, seed %d (MMIPC_LOAD_SEED=%d repeats the message lengths)", seconds, seed, seed)
	peers := peerSet(t, "tests/c/load_peer.c", "loadpeer", "python_load_peer.py")
	dir := regionDir(t)
	d := mmipc.Dir(dir)
	for _, lr := range loadRings {
		q, err := d.CreateRing(lr.name, lr.capacity, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		q.Close() // the peers hold it; a ring's name outlives its handles
	}

	duration := time.Duration(seconds) * time.Second
	limit := duration + 15*time.Second
	env := peerEnv(dir)
	var procs []*loadProc
	begin := time.Now()
	nextID := 1
	for _, lr := range loadRings {
		args := []string{"recv", lr.name, strconv.Itoa(seconds), strconv.Itoa(lr.minLen), strconv.Itoa(lr.maxLen), "0", strconv.Itoa(len(lr.senders))}
		procs = append(procs, startLoad(t, peers, lr, lr.recv, "recv", 0, limit, env, args))
		for _, lang := range lr.senders {
			args := []string{"send", lr.name, strconv.Itoa(seconds), strconv.Itoa(lr.minLen), strconv.Itoa(lr.maxLen),
				strconv.FormatUint(seed+uint64(nextID), 10), strconv.Itoa(nextID)}
			procs = append(procs, startLoad(t, peers, lr, lang, "send", nextID, limit, env, args))
			nextID++
		}
	}

	// Watch: progress per ring, memory per process, every second until all have exited.
	firstSample := min(5*time.Second, duration/3)
	lastHead := map[string]uint64{}
	lastMove := map[string]time.Time{} // set once the ring has moved: its peers are up
	var slowestStart time.Duration     // from the start to the first move of the last ring to move
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		running := 0
		for _, p := range procs {
			if p.exited() {
				continue
			}
			running++
			if rss, ok := vmRSS(p.pid); ok {
				// The first sample once the process has worked for a while (a peer that started
				// late under load would otherwise count its start-up as growth).
				if _, up := lastMove[p.ring]; p.rssFirst == 0 && up && time.Since(begin) >= firstSample {
					p.rssFirst = rss
				}
				p.rssLast = rss
			}
		}
		if running == 0 {
			break
		}
		now := time.Now()
		if now.Sub(begin) > limit {
			var late []string
			for _, p := range procs {
				if !p.exited() {
					late = append(late, p.label)
				}
			}
			t.Fatalf("still running %v after the start (duration + 15 s): %s", now.Sub(begin).Round(time.Millisecond), strings.Join(late, ", "))
		}
		for _, lr := range loadRings {
			if loadReceiver(procs, lr.name).exited() {
				continue
			}
			info, err := d.RingStat(lr.name)
			if err != nil {
				t.Fatalf("RingStat %s: %v", lr.name, err)
			}
			since, moved := lastMove[lr.name]
			switch {
			case info.Head != lastHead[lr.name]:
				lastHead[lr.name], lastMove[lr.name] = info.Head, now
				if !moved {
					slowestStart = max(slowestStart, now.Sub(begin))
				}
			case moved && now.Sub(since) >= loadStall:
				t.Fatalf("ring %s made no progress for %v (head %d), %v after the start: %+v\n%s", lr.name,
					now.Sub(since).Round(time.Millisecond), info.Head, now.Sub(begin).Round(time.Millisecond), info, loadOutputs(procs))
			case !moved && now.Sub(begin) >= loadStartLimit:
				t.Fatalf("ring %s never moved in the %v after the start: %+v\n%s", lr.name, loadStartLimit, info, loadOutputs(procs))
			}
		}
		<-tick.C
	}
	elapsed := time.Since(begin)

	// Every process succeeded; counts match exactly.
	for _, p := range procs {
		if p.err != nil || !strings.Contains(p.out.String(), "ok "+p.role+" ") {
			t.Errorf("%s: %v\n%s", p.label, p.err, p.out.String())
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	sentBy := map[string]uint64{}  // language -> messages
	bytesBy := map[string]uint64{} // language -> bytes
	recvBy := map[string]uint64{}
	var total uint64
	var perRing []string
	for _, lr := range loadRings {
		recv := loadReceiver(procs, lr.name)
		got := recv.fields("from")
		var ringTotal uint64
		for _, p := range procs {
			if p.ring != lr.name || p.role != "send" {
				continue
			}
			f := p.fields("ok")
			sent, bytes := f[0]["sent"], f[0]["bytes"]
			var line map[string]uint64
			for _, g := range got {
				if g["id"] == uint64(p.id) {
					line = g
				}
			}
			if line == nil || line["count"] != sent || int64(line["last"]) != int64(sent)-1 {
				t.Errorf("%s: sent %d; %s got %v", p.label, sent, recv.label, line)
			}
			if sent == 0 {
				t.Errorf("%s sent nothing", p.label)
			}
			sentBy[p.lang] += sent
			bytesBy[p.lang] += bytes
			ringTotal += sent
		}
		if len(got) != len(lr.senders) {
			t.Errorf("%s reports %d senders, want %d", recv.label, len(got), len(lr.senders))
		}
		if rt := recv.fields("ok")[0]["total"]; rt != ringTotal {
			t.Errorf("%s: total %d, the senders sent %d", recv.label, rt, ringTotal)
		}
		recvBy[recv.lang] += ringTotal
		total += ringTotal
		perRing = append(perRing, fmt.Sprintf("%s %s->%s %d", lr.name, strings.Join(lr.senders, "+"), lr.recv, ringTotal))

		info, err := d.RingStat(lr.name)
		if err != nil {
			t.Fatal(err)
		}
		if info.Head != info.Tail || info.Used != 0 || info.Messages != 0 {
			t.Errorf("%s after the run: %+v, want empty", lr.name, info)
		}
		if info.Send.Shared != (len(lr.senders) > 1) {
			t.Errorf("%s after the run: send side shared %v with %d senders", lr.name, info.Send.Shared, len(lr.senders))
		}
	}

	// Memory.
	var rss []string
	for _, p := range procs {
		bound := int64(16 << 20)
		if p.lang == "C" {
			bound = 4 << 20
		}
		growth := p.rssLast - p.rssFirst
		rss = append(rss, fmt.Sprintf("%s %d->%d KiB", p.label, p.rssFirst>>10, p.rssLast>>10))
		if p.rssFirst == 0 {
			t.Errorf("%s: no memory sample taken at %v", p.label, firstSample)
		} else if growth > bound {
			t.Errorf("%s: VmRSS grew by %d KiB (%d -> %d KiB), more than %d KiB", p.label, growth>>10, p.rssFirst>>10, p.rssLast>>10, bound>>10)
		}
	}

	secs := duration.Seconds()
	var tput []string
	for _, lang := range []string{"C", "Go", "Python"} {
		tput = append(tput, fmt.Sprintf("%s sent %d (%.0f msg/s, %.1f MB/s), received %d (%.0f msg/s)", lang,
			sentBy[lang], float64(sentBy[lang])/secs, float64(bytesBy[lang])/secs/1e6, recvBy[lang], float64(recvBy[lang])/secs))
	}
	t.Logf("load: %d processes on %d rings, %v (all exited %v after the start; the last ring to move began within %v): "+
		"%d messages, all verified, none lost\n"+
		"per ring: %s\nper language: %s\nVmRSS (at %v -> last sample): %s",
		len(procs), len(loadRings), duration, elapsed.Round(time.Millisecond), slowestStart.Round(time.Millisecond), total, strings.Join(perRing, "; "),
		strings.Join(tput, "; "), firstSample, strings.Join(rss, "; "))
}

const (
	loadStall = 5 * time.Second // a ring whose head stands still this long (its receiver running) is stuck
	// loadStartLimit bounds the start-up: on a loaded 2-CPU machine a Python peer has taken seconds
	// to start, which is not a stall of the ring.
	loadStartLimit = 30 * time.Second
)

// loadRing is one ring of the load test: its senders' languages and its receiver's.
type loadRing struct {
	name           string
	capacity       int
	senders        []string
	recv           string
	minLen, maxLen int
}

// Every pairing of a sender's language with a receiver's: C->C, Go->Go, Python->Python, Go->C,
// Python->C, Go->Python, and on the two-sender rings C->Python, Go->Python, Python->Go, C->Go.
var loadRings = []loadRing{
	{"load-0", 4 << 10, []string{"C"}, "C", 24, 256}, // small: full, wrapping, padding all the time
	{"load-1", 64 << 10, []string{"Go"}, "Go", 24, 4096},
	{"load-2", 64 << 10, []string{"Python"}, "Python", 24, 1024},
	{"load-3", 64 << 10, []string{"Go"}, "C", 24, 4096},
	{"load-4", 16 << 10, []string{"Python"}, "C", 24, 256},
	{"load-5", 64 << 10, []string{"Go"}, "Python", 24, 2048},
	{"load-6", 64 << 10, []string{"C", "Go"}, "Python", 24, 512},
	{"load-7", 256 << 10, []string{"Python", "C"}, "Go", 24, 16384},
}

type loadProc struct {
	*pairProc
	lang, role, ring  string
	id                int
	rssFirst, rssLast int64
}

func startLoad(t *testing.T, peers map[string][]string, lr loadRing, lang, role string, id int, limit time.Duration, env, args []string) *loadProc {
	t.Helper()
	label := fmt.Sprintf("%s %s %s", lang, role, lr.name)
	if role == "send" {
		label += fmt.Sprintf(" id=%d", id)
	}
	argv := append(append([]string{}, peers[lang]...), args...)
	// The context's kill is a backstop; the test itself fails a process still running at limit.
	p, _ := startHardening(t, label, limit+30*time.Second, env, false, argv...)
	return &loadProc{pairProc: p, lang: lang, role: role, ring: lr.name, id: id}
}

func loadReceiver(procs []*loadProc, ring string) *loadProc {
	for _, p := range procs {
		if p.ring == ring && p.role == "recv" {
			return p
		}
	}
	panic("no receiver for " + ring)
}

// fields parses the peer's output lines that start with prefix into key=number maps.
func (p *loadProc) fields(prefix string) []map[string]uint64 {
	var out []map[string]uint64
	sc := bufio.NewScanner(strings.NewReader(p.out.String()))
	for sc.Scan() {
		words := strings.Fields(sc.Text())
		if len(words) == 0 || words[0] != prefix {
			continue
		}
		m := map[string]uint64{}
		for _, w := range words[1:] {
			if k, v, ok := strings.Cut(w, "="); ok {
				if n, err := strconv.ParseInt(v, 10, 64); err == nil {
					m[k] = uint64(n)
				}
			}
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		out = append(out, map[string]uint64{})
	}
	return out
}

func loadOutputs(procs []*loadProc) string {
	var b strings.Builder
	for _, p := range procs {
		fmt.Fprintf(&b, "--- %s (pid %d, exited %v)\n%s", p.label, p.pid, p.exited(), p.out.String())
	}
	return b.String()
}

// vmRSS is the resident set size of a process, from /proc/<pid>/status.
func vmRSS(pid int) (int64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return kb << 10, true
				}
			}
		}
	}
	return 0, false // a zombie has no VmRSS line
}
