package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/runner"
)

// lifecycleFlags are the flags of run and create about a container's
// life: --restart, --init, --label, --stop-signal, --cidfile.
type lifecycleFlags struct {
	restart, stopSignal, cidfile string
	init                         bool
	labels, labelFiles           []string
}

func (l *lifecycleFlags) add(fset *pflag.FlagSet) {
	fset.StringVar(&l.restart, "restart", "no", "restart `POLICY`: no, on-failure[:N], always, unless-stopped")
	fset.BoolVar(&l.init, "init", false, "run a reaper as pid 1 that forwards signals and reaps zombies")
	fset.StringArrayVarP(&l.labels, "label", "l", nil, "set the label `KEY=VALUE`")
	fset.StringArrayVar(&l.labelFiles, "label-file", nil, "read KEY=VALUE labels from `FILE`")
	fset.StringVar(&l.stopSignal, "stop-signal", "", "the `SIGNAL` stop sends (default: the image's, or SIGTERM)")
	fset.StringVar(&l.cidfile, "cidfile", "", "write the container's id to `FILE` (which must not exist)")
}

// apply puts the flags into o.
func (l *lifecycleFlags) apply(o *runner.Options) error {
	p, err := runner.ParseRestartPolicy(l.restart)
	if err != nil {
		return err
	}
	o.Restart, o.Init, o.StopSignal = p, l.init, l.stopSignal
	var kvs []string
	for _, f := range l.labelFiles {
		lines, err := readLabelFile(f)
		if err != nil {
			return err
		}
		kvs = append(kvs, lines...)
	}
	for _, kv := range append(kvs, l.labels...) {
		if o.Labels == nil {
			o.Labels = map[string]string{}
		}
		k, v, _ := strings.Cut(kv, "=")
		if k == "" {
			return fmt.Errorf("invalid label %q: no key", kv)
		}
		o.Labels[k] = v
	}
	return nil
}

// checkCidfile refuses an existing --cidfile, as docker, before anything
// is created.
func (l *lifecycleFlags) checkCidfile() error {
	if l.cidfile == "" {
		return nil
	}
	if _, err := os.Stat(l.cidfile); err == nil {
		return fmt.Errorf("container ID file found, make sure the other container isn't running or delete %s", l.cidfile)
	}
	return nil
}

// writeCidfile writes id to --cidfile, which must still not exist.
func (l *lifecycleFlags) writeCidfile(id string) error {
	if l.cidfile == "" {
		return nil
	}
	f, err := os.OpenFile(l.cidfile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("failed to create the container ID file: %w", err)
	}
	_, err = f.WriteString(id)
	return errors.Join(err, f.Close())
}

// readLabelFile reads KEY=VALUE lines (# comments and blank lines
// skipped).
func readLabelFile(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("label file: %w", err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out, nil
}
