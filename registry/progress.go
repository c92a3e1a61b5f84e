package registry

import "sync"

// Status is what is happening to one layer, in docker's words.
type Status string

// The statuses of a layer, in the order they come. A pull goes
// PullingFSLayer [Waiting] Downloading... VerifyingChecksum
// DownloadComplete Extracting... PullComplete, or AlreadyExists; a push
// Preparing [Waiting] Pushing... Pushed, or LayerExists, or MountedFrom.
const (
	PullingFSLayer    Status = "Pulling fs layer"
	Waiting           Status = "Waiting"
	Downloading       Status = "Downloading"
	VerifyingChecksum Status = "Verifying Checksum"
	DownloadComplete  Status = "Download complete"
	Extracting        Status = "Extracting"
	PullComplete      Status = "Pull complete"
	AlreadyExists     Status = "Already exists"

	Preparing   Status = "Preparing"
	Pushing     Status = "Pushing"
	Pushed      Status = "Pushed"
	LayerExists Status = "Layer already exists"
	MountedFrom Status = "Mounted from" // Event.From names the repository
)

// Event is one change of one layer.
type Event struct {
	// ID is the layer's short id as docker shows it: the first 12 hex
	// digits of its blob's digest.
	ID     string
	Status Status
	// Current and Total are bytes, for Downloading, Extracting and
	// Pushing (Total 0: unknown).
	Current, Total int64
	// From is the repository a layer was mounted from (MountedFrom).
	From string
}

// Progress receives the events of a pull or push. Calls are serialized:
// an implementation need not lock. The first event of each layer comes
// in the manifest's order (a pull: bottom first; a push: top first), so a
// display can give each layer its line.
type Progress interface {
	Layer(Event)
}

// reporter serializes events to a Progress that may be nil.
type reporter struct {
	mu sync.Mutex
	p  Progress
}

func (r *reporter) report(ev Event) {
	if r == nil || r.p == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.p.Layer(ev)
}

// shortID is a blob's id as docker shows it.
func shortID(digest string) string {
	const prefix = len("sha256:")
	if len(digest) < prefix+12 {
		return digest
	}
	return digest[prefix : prefix+12]
}
