// Package procstat reads a process's CPU time and RSS from /proc (Linux).
package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Sample is a process's CPU time and RSS from /proc.
type Sample struct {
	CPUSeconds float64
	RSSBytes   int64
}

const clockTicks = 100 // USER_HZ on Linux

func Read(pid int) (Sample, error) {
	if pid <= 0 {
		return Sample{}, nil
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Sample{}, err
	}
	// Fields after the parenthesised command name; utime and stime are 14 and 15.
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Sample{}, err
	}
	var rssKB int64
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			rssKB, _ = strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
		}
	}
	return Sample{CPUSeconds: (utime + stime) / clockTicks, RSSBytes: rssKB * 1024}, nil
}
