package cowcache

import (
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// HistoryEntry is one row of an image's history (unionfuse history).
type HistoryEntry struct {
	// ID is the image whose top this step is, when there is one in the
	// store ("" prints as <missing>).
	ID         Digest
	Created    time.Time
	CreatedBy  string
	Comment    string
	Size       int64
	EmptyLayer bool
}

// History returns the steps that made img, newest first. Steps that made
// a layer carry the layer's size; the top step carries img's id, and a
// step where another stored image ends (a parent image) carries that id.
func (s *Store) History(img Image) ([]HistoryEntry, error) {
	release, err := s.rlock()
	if err != nil {
		return nil, err
	}
	defer release()
	images, err := s.images()
	if err != nil {
		return nil, err
	}
	hist := img.Config.History
	if len(hist) == 0 {
		for range img.Layers {
			hist = append(hist, historyOfLayer(img))
		}
	}
	var out []HistoryEntry
	layer := 0
	for i, h := range hist {
		e := HistoryEntry{Created: h.Created.Time, CreatedBy: h.CreatedBy, Comment: h.Comment, EmptyLayer: h.EmptyLayer}
		if !h.EmptyLayer && layer < len(img.Layers) {
			l, err := s.Layer(img.Layers[layer])
			if err != nil {
				return nil, err
			}
			e.Size = l.Size
			layer++
		}
		for _, o := range images {
			if o.ID != img.ID && len(o.Config.History) == i+1 && len(o.Layers) == layer &&
				(layer == 0 || o.Layers[layer-1] == img.Layers[layer-1]) {
				e.ID = o.ID
			}
		}
		out = append(out, e)
	}
	if len(out) > 0 {
		out[len(out)-1].ID = img.ID
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// historyOfLayer is the step shown for a layer of an image whose config
// has no history.
func historyOfLayer(img Image) v1.History {
	return v1.History{Created: img.Config.Created}
}
