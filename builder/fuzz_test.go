package builder

import (
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// FuzzParseDockerfile runs the Dockerfile front end — buildkit's parser
// and typed instructions, unionfuse's error messages, the meta ARGs and
// FROM's expansion — on any text. Its corpus in testdata/fuzz/ runs as a
// regression test with go test. To search for new failures:
//
//	go test -run '^$' -fuzz=FuzzParseDockerfile -fuzztime=60s ./builder
func FuzzParseDockerfile(f *testing.F) {
	for _, s := range []string{
		"FROM busybox:latest\nWORKDIR /w\nRUN echo made > made\nCOPY f /bin/\n",
		"ARG V=1\nFROM base:$V AS one\nENV A=b C=\"d e\"\nFROM one\nCOPY --from=one /a /b\nCMD [\"sh\", \"-c\", \"x\"]\n",
		"# escape=`\nFROM x\nRUN a `\n  b\n",
		"FROM x\nRUN <<EOF\necho hi\nEOF\n",
		"FROM x\nFOO bar\n",
		"RUN x\n",
		"FROM x\nRUN [\"a\"\n",
		"# syntax=docker/dockerfile:1\nFROM ${A:-scratch}\nLABEL a=b\nHEALTHCHECK CMD true\nONBUILD RUN x\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		df, err := parseDockerfileText("Dockerfile", []byte(text))
		if err != nil {
			if msg := err.Error(); !strings.HasPrefix(msg, "Dockerfile:") || strings.Contains(msg, "\n") {
				t.Fatalf("error %q: want one line that starts with the file", msg)
			}
			return
		}
		if len(df.stages) == 0 {
			t.Fatal("no stage and no error")
		}
		a := newArgs(map[string]string{"V": "2"})
		for i := range df.metaArgs {
			if err := a.declareMeta(df.lex, &df.metaArgs[i]); err != nil {
				return
			}
		}
		for _, st := range df.stages {
			lineOf(st.Location)
			if _, err := df.lex.ProcessWordWithMatches(st.BaseName, shell.EnvsFromSlice(a.metaEnv())); err != nil {
				continue
			}
			for _, cmd := range st.Commands {
				sourceOf(cmd)
				lineOf(cmd.Location())
			}
		}
	})
}
