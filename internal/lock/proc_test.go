package lock

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n"
	st, err := parseProcStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if st.state != 'S' || st.start != 987654 {
		t.Fatalf("parsed %+v, want state S, start 987654", st)
	}
	for _, bad := range []string{"", "12 (x", "12 (x) S 1 2 3", "12 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 nope 1"} {
		if _, err := parseProcStat(bad); err == nil {
			t.Errorf("parseProcStat(%q) succeeded", bad)
		}
	}
}

func TestProcessAlive(t *testing.T) {
	me, err := readProcStat(os.Getpid())
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	if !processAlive(os.Getpid(), me.start) || !processAlive(os.Getpid(), 0) {
		t.Fatal("this process is not alive")
	}
	if processAlive(os.Getpid(), me.start+1) {
		t.Fatal("a different start time is the same process")
	}
	if processAlive(0, 0) || processAlive(-5, 0) {
		t.Fatal("a PID that is not a process is alive")
	}

	// A child that exited but was not waited for is a zombie: dead.
	c := exec.Command("true")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	pid := c.Process.Pid
	// Waiting for the exit would reap the child: look until it is a
	// zombie (the bound only guards against a hang).
	for deadline := time.Now().Add(time.Minute); ; {
		st, err := readProcStat(pid)
		if err != nil {
			t.Fatal(err)
		}
		if st.state == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the child did not exit")
		}
		time.Sleep(time.Millisecond)
	}
	if processAlive(pid, 0) {
		t.Fatal("a zombie is alive")
	}
	c.Wait()
	if processAlive(pid, 0) {
		t.Fatal("a reaped process is alive")
	}
}
