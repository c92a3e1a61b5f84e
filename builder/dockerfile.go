package builder

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// dockerfile is a parsed Dockerfile.
type dockerfile struct {
	stages   []instructions.Stage
	metaArgs []instructions.ArgCommand // ARGs before the first FROM
	lex      *shell.Lex                // with the file's escape character
}

// parseDockerfile reads and parses the Dockerfile at path with buildkit's
// parser and typed instructions. Errors name the file and line.
func parseDockerfile(path string) (*dockerfile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read Dockerfile: %w", err)
	}
	return parseDockerfileText(path, b)
}

// parseDockerfileText parses the text b of the Dockerfile at path.
func parseDockerfileText(path string, b []byte) (*dockerfile, error) {
	res, err := parser.Parse(bytes.NewReader(b))
	if err != nil {
		return nil, dockerfileError(path, err)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, dockerfileError(path, err)
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("%s: no FROM instruction: a Dockerfile starts with FROM (after ARGs and comments)", path)
	}
	return &dockerfile{stages: stages, metaArgs: metaArgs, lex: shell.NewLex(res.EscapeToken)}, nil
}

// dockerfileError puts the file and line in front of a parse error.
func dockerfileError(path string, err error) error {
	var unknown *instructions.UnknownInstructionError
	if errors.As(err, &unknown) {
		return fmt.Errorf("%s:%d: unknown instruction: %s", path, unknown.Line, strings.ToUpper(unknown.Instruction))
	}
	line := 0
	var loc *parser.LocationError
	if errors.As(err, &loc) && len(loc.Locations) > 0 && len(loc.Locations[0]) > 0 {
		line = loc.Locations[0][0].Start.Line
	}
	msg := err.Error()
	if strings.Contains(msg, "no build stage in current context") {
		msg = "an instruction before the first FROM: a Dockerfile starts with FROM (after ARGs and comments)"
	}
	if i := strings.Index(msg, "dockerfile parse error on line "); i >= 0 {
		var n int
		if _, e := fmt.Sscanf(msg[i:], "dockerfile parse error on line %d:", &n); e == nil {
			line = n
			_, msg, _ = strings.Cut(msg[i:], ": ")
		}
	}
	if line > 0 {
		return fmt.Errorf("%s:%d: %s", path, line, msg)
	}
	return fmt.Errorf("%s: %s", path, msg)
}

// lineOf returns the first line of an instruction's location, for errors.
func lineOf(loc []parser.Range) int {
	if len(loc) > 0 {
		return loc[0].Start.Line
	}
	return 0
}

// args tracks the ARGs in scope of a stage and the --build-arg values.
type args struct {
	given    map[string]string // --build-arg K=V
	used     map[string]bool   // build args some ARG declared
	meta     map[string]*string
	declared []string           // in the stage, in order
	values   map[string]*string // in the stage
}

func newArgs(given map[string]string) *args {
	return &args{given: given, used: map[string]bool{}, meta: map[string]*string{}}
}

// declareMeta handles an ARG before the first FROM (expanded with the
// meta args before it).
func (a *args) declareMeta(lex *shell.Lex, c *instructions.ArgCommand) error {
	for _, kv := range c.Args {
		v, err := a.value(kv, func(w string) (string, error) {
			out, _, err := lex.ProcessWord(w, shell.EnvsFromSlice(a.metaEnv()))
			return out, err
		})
		if err != nil {
			return err
		}
		a.meta[kv.Key] = v
	}
	return nil
}

// value is the value of one ARG: the --build-arg, else its default.
func (a *args) value(kv instructions.KeyValuePairOptional, expand func(string) (string, error)) (*string, error) {
	if v, ok := a.given[kv.Key]; ok {
		a.used[kv.Key] = true
		return &v, nil
	}
	if kv.Value == nil {
		return nil, nil
	}
	v, err := expand(*kv.Value)
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// metaEnv returns the meta args with values, as K=V.
func (a *args) metaEnv() []string { return kvs(a.meta, nil) }

// startStage forgets the previous stage's ARGs.
func (a *args) startStage() {
	a.declared = nil
	a.values = map[string]*string{}
}

// declare handles an ARG in a stage: a name without a default takes the
// meta ARG's value, as Docker does.
func (a *args) declare(kv instructions.KeyValuePairOptional, expand func(string) (string, error)) error {
	v, err := a.value(kv, expand)
	if err != nil {
		return err
	}
	if v == nil && kv.Value == nil {
		if m, ok := a.meta[kv.Key]; ok {
			v = m
		}
	}
	if _, ok := a.values[kv.Key]; !ok {
		a.declared = append(a.declared, kv.Key)
	}
	a.values[kv.Key] = v
	return nil
}

// env returns the stage's ARGs that have a value and that ENV does not
// set (ENV wins over ARG), as K=V sorted by name.
func (a *args) env(configEnv []string) []string {
	set := map[string]bool{}
	for _, kv := range configEnv {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	return kvs(a.values, set)
}

// unused returns the --build-arg names no ARG declared.
func (a *args) unused() []string {
	var out []string
	for k := range a.given {
		if !a.used[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func kvs(m map[string]*string, skip map[string]bool) []string {
	var out []string
	for k, v := range m {
		if v != nil && !skip[k] {
			out = append(out, k+"="+*v)
		}
	}
	sort.Strings(out)
	return out
}

// setEnv sets K=V in an environment list, in the place of an earlier K
// (as Docker keeps the order).
func setEnv(env []string, k, v string) []string {
	out := append([]string(nil), env...)
	for i, kv := range out {
		if name, _, _ := strings.Cut(kv, "="); name == k {
			out[i] = k + "=" + v
			return out
		}
	}
	return append(out, k+"="+v)
}
