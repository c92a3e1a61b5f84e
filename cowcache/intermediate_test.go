package cowcache

import (
	"bytes"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/unionfuse/unionfuse/internal/testutil"
)

// TestIntermediate: the unnamed steps below a named image are
// intermediate (hidden by images, kept by prune); an unnamed image that is
// no other's parent is dangling and goes with prune.
func TestIntermediate(t *testing.T) {
	s := newStore(t)
	base, err := s.Import(bytes.NewReader(testutil.Tar(t, testutil.Spec("a=a"))), "base", "base.tar")
	if err != nil {
		t.Fatal(err)
	}
	step, err := s.AppendLayer(&base, bytes.NewReader(testutil.Tar(t, testutil.Spec("b=b"))), "", v1.History{CreatedBy: "COPY b /"})
	if err != nil {
		t.Fatal(err)
	}
	top, err := s.CommitUpper(&step, UpperCommit{Config: &v1.Config{Cmd: []string{"/b"}}, History: v1.History{CreatedBy: "CMD"}, Name: "app:1"})
	if err != nil {
		t.Fatal(err)
	}
	lone, err := s.Import(bytes.NewReader(testutil.Tar(t, testutil.Spec("c=c"))), "", "lone.tar")
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.Images()
	if err != nil {
		t.Fatal(err)
	}
	got := Intermediate(all)
	if !got[step.ID] || got[base.ID] || got[top.ID] || got[lone.ID] || len(got) != 1 {
		t.Errorf("Intermediate = %v; want only the step %s", got, step.ID.Short())
	}
	r, err := s.Prune()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Images) != 1 || r.Images[0] != lone.ID {
		t.Errorf("Prune removed %v; want only the dangling %s", r.Images, lone.ID.Short())
	}
	if _, err := s.Image(string(step.ID)); err != nil {
		t.Errorf("the intermediate step went with prune: %v", err)
	}
}
