package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CPU accounting for the end-to-end run: on a two-core machine that runs
// the load generator, syncd (HTTP, the embedded NATS server, the
// consumer) and Postgres at once, what bounds a rate is where the cores
// went.

// clockTick is Linux's USER_HZ, the unit of /proc/<pid>/stat times.
const clockTick = 100

// cpuSplit is the CPU time each party used over a window.
type cpuSplit struct {
	syncd, postgres, generator time.Duration
	// idle and iowait are the machine's, over all cores: iowait is time
	// a core had nothing to run while a disk write (an fsync) was pending.
	idle, iowait time.Duration
	wall         time.Duration
}

// cpuSample is a point-in-time reading of the cumulative CPU times.
type cpuSample struct {
	at                         time.Time
	syncd, postgres, generator time.Duration
	idle, iowait               time.Duration
}

func sampleCPU(syncdPID int) cpuSample {
	s := cpuSample{at: time.Now(), syncd: procCPU(strconv.Itoa(syncdPID)), generator: procCPU("self")}
	s.idle, s.iowait = machineIdle()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		comm, err := os.ReadFile(filepath.Join(d, "comm"))
		if err == nil && strings.TrimSpace(string(comm)) == "postgres" {
			s.postgres += procCPU(filepath.Base(d))
		}
	}
	return s
}

func (b cpuSample) since(a cpuSample) cpuSplit {
	return cpuSplit{syncd: b.syncd - a.syncd, postgres: b.postgres - a.postgres, generator: b.generator - a.generator,
		idle: b.idle - a.idle, iowait: b.iowait - a.iowait, wall: b.at.Sub(a.at)}
}

// cores is d as a share of the window: 1.0 is one core busy throughout.
func (c cpuSplit) cores(d time.Duration) float64 {
	if c.wall <= 0 {
		return 0
	}
	return d.Seconds() / c.wall.Seconds()
}

// procCPU is a process's user+system time (0 if it is gone). Postgres
// backends that ended during the window are not counted: the consumer's
// connections live through it.
func procCPU(pid string) time.Duration {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: utime and stime are the 12th and 13th.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * time.Second / clockTick
}

// machineIdle is the idle and iowait time of all cores (/proc/stat).
func machineIdle() (idle, iowait time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait …
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0
	}
	i, _ := strconv.ParseInt(f[4], 10, 64)
	w, _ := strconv.ParseInt(f[5], 10, 64)
	return time.Duration(i) * time.Second / clockTick, time.Duration(w) * time.Second / clockTick
}

// note says where the cores went.
func (c cpuSplit) note() string {
	return fmt.Sprintf("syncd %.2f, Postgres %.2f, load generator %.2f; idle %.2f, of which waiting on the disk %.2f",
		c.cores(c.syncd), c.cores(c.postgres), c.cores(c.generator), c.cores(c.idle+c.iowait), c.cores(c.iowait))
}
