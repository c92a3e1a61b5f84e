package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// runFio runs one fio job of 4 KiB random I/O (rw is "randread" or
// "randwrite") with the psync engine and one job on path, a file of size
// bytes, for runtime, and returns its IOPS.
//
// The page cache is left as it is (invalidate=0): reads measure the cached
// path, as on a warm container image. Reads open the file read-only
// (readonly), so they never copy it up. For writes, fio first lays the file
// out (sequential writes, not counted); the random writes are buffered, as
// an application's would be.
func runFio(path, rw string, size int64, runtime time.Duration) (float64, error) {
	args := []string{
		"--name=" + rw, "--filename=" + path, "--rw=" + rw, "--bs=4k",
		"--ioengine=psync", "--numjobs=1", fmt.Sprintf("--size=%d", size),
		"--time_based", fmt.Sprintf("--runtime=%dms", runtime.Milliseconds()),
		"--invalidate=0", "--randrepeat=1", "--output-format=json",
	}
	if rw == "randread" {
		args = append(args, "--readonly")
	}
	cmd := exec.Command("fio", args...)
	asWorkloadUser(cmd)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("fio %s: %v: %s", rw, err, firstLine(stderr.String()))
	}
	// fio may print notes before the JSON document.
	if i := strings.IndexByte(string(b), '{'); i > 0 {
		b = b[i:]
	}
	var res struct {
		Jobs []struct {
			Error int `json:"error"`
			Read  struct {
				IOPS float64 `json:"iops"`
			} `json:"read"`
			Write struct {
				IOPS float64 `json:"iops"`
			} `json:"write"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return 0, fmt.Errorf("fio %s: parse the JSON output: %w", rw, err)
	}
	if len(res.Jobs) != 1 || res.Jobs[0].Error != 0 {
		return 0, fmt.Errorf("fio %s: job failed: %s", rw, firstLine(stderr.String()))
	}
	if rw == "randread" {
		return res.Jobs[0].Read.IOPS, nil
	}
	return res.Jobs[0].Write.IOPS, nil
}
