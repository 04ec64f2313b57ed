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
	disk         diskStats
}

// cpuSample is a point-in-time reading of the cumulative CPU times.
type cpuSample struct {
	at                         time.Time
	syncd, postgres, generator time.Duration
	idle, iowait               time.Duration
	disk                       diskStats
}

func sampleCPU(syncdPID int) cpuSample {
	s := cpuSample{at: time.Now(), syncd: procCPU(strconv.Itoa(syncdPID)), generator: procCPU("self")}
	s.idle, s.iowait = machineIdle()
	s.disk = sampleDisks()
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
		idle: b.idle - a.idle, iowait: b.iowait - a.iowait, wall: b.at.Sub(a.at), disk: b.disk.minus(a.disk)}
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

// note says where the cores went, and what the disks did.
func (c cpuSplit) note() string {
	return fmt.Sprintf("syncd %.2f, Postgres %.2f, load generator %.2f; idle %.2f, of which waiting on the disk %.2f; %s",
		c.cores(c.syncd), c.cores(c.postgres), c.cores(c.generator), c.cores(c.idle+c.iowait), c.cores(c.iowait), c.disk.note(c.wall))
}

// diskStats are the cumulative counters of the machine's disks
// (/proc/diskstats, whole devices): whether the disk is saturated or only
// slow to sync is what the end-to-end latency turns on.
type diskStats struct {
	writes, sectors, flushes int64
	busy                     time.Duration // time with I/O in flight
}

func sampleDisks() diskStats {
	var d diskStats
	b, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return d
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		// major minor name, then reads (4), writes (4), in flight, busy
		// ms, weighted ms, discards (4), flushes (2).
		if len(f) < 14 {
			continue
		}
		if _, err := os.Stat("/sys/block/" + f[2]); err != nil || strings.HasPrefix(f[2], "loop") || strings.HasPrefix(f[2], "ram") {
			continue // a partition, or not a disk
		}
		n := func(i int) int64 {
			if i >= len(f) {
				return 0
			}
			v, _ := strconv.ParseInt(f[i], 10, 64)
			return v
		}
		d.writes += n(7)
		d.sectors += n(9)
		d.busy += time.Duration(n(12)) * time.Millisecond
		d.flushes += n(18)
	}
	return d
}

func (b diskStats) minus(a diskStats) diskStats {
	return diskStats{writes: b.writes - a.writes, sectors: b.sectors - a.sectors, flushes: b.flushes - a.flushes, busy: b.busy - a.busy}
}

func (d diskStats) note(wall time.Duration) string {
	s := wall.Seconds()
	if s <= 0 {
		return ""
	}
	return fmt.Sprintf("disk %.0f writes/s, %.1f MB/s, %.0f flushes/s, busy %.0f %% of the time", float64(d.writes)/s, float64(d.sectors)*512/1e6/s, float64(d.flushes)/s, 100*d.busy.Seconds()/s)
}
