package fs

import (
	"testing"
	"time"
)

// TestReleaseWaitsForBorrowedHandle borrows a node's open file as a
// GETATTR without a handle does, then releases the file: the release must
// wait until the borrower is done (it would close the descriptor under
// it), and no later request may borrow the file.
func TestReleaseWaitsForBorrowedHandle(t *testing.T) {
	var ht handleTable
	n := &node{}
	fh := ht.add(n, &dirHandle{n: n})
	f, done := ht.anyOf(n)
	if f == nil {
		t.Fatal("no open file of the node to borrow")
	}
	detached := make(chan *fileEntry)
	go func() { detached <- ht.detach(fh) }()
	select {
	case <-detached:
		t.Fatal("the file was released while a request used it")
	case <-time.After(100 * time.Millisecond):
	}
	if g, d := ht.anyOf(n); g != nil {
		d()
		t.Error("a file being released was lent again")
	}
	done()
	if e := <-detached; e == nil || e.file != f {
		t.Fatalf("detach returned %v", e)
	}
	ht.drop(fh, nil)
	if ht.entry(fh) != nil || len(ht.open) != 0 {
		t.Error("the released handle is still in the table")
	}
}

// TestReleaseOfTwoHandlesInterleaved releases two files of one node, each
// detached before either is dropped (two RELEASEs served at once).
func TestReleaseOfTwoHandlesInterleaved(t *testing.T) {
	var ht handleTable
	n := &node{}
	a, b := ht.add(n, &dirHandle{n: n}), ht.add(n, &dirHandle{n: n})
	ht.detach(a)
	ht.detach(b)
	ht.drop(a, nil)
	ht.drop(b, nil)
	if len(ht.open) != 0 {
		t.Errorf("the node still has open files: %v", ht.open[n])
	}
}
