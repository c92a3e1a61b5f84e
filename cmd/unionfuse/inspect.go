package main

import (
	"encoding/json"
	"fmt"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/cowcache"
)

var inspectCmd = &command{
	name:  "inspect",
	usage: "unionfuse inspect IMAGE...",
	help: `Print a JSON array describing each image, in the shape of docker image
inspect. GraphDriver.Data has the layer directories in overlay's terms:
UpperDir is the image's top layer, LowerDir the layers below it, top first
and colon-separated (absent for a one-layer image); MergedDir and WorkDir
are where the top layer's union and work directory would be.`,
	options: optionsOf(inspectFlags),
	run:     runInspect,
}

func inspectFlags() (*pflag.FlagSet, *storeFlags) {
	a := &storeFlags{}
	fset := pflag.NewFlagSet("inspect", pflag.ContinueOnError)
	a.add(fset)
	return fset, a
}

// imageInspect is docker's image inspect object, the fields unionfuse has.
type imageInspect struct {
	ID           string            `json:"Id"`
	RepoTags     []string          `json:"RepoTags"`
	RepoDigests  []string          `json:"RepoDigests"`
	Parent       string            `json:"Parent"`
	Comment      string            `json:"Comment"`
	Created      string            `json:"Created"`
	Author       string            `json:"Author"`
	Config       v1.Config         `json:"Config"`
	Architecture string            `json:"Architecture"`
	Os           string            `json:"Os"`
	Size         int64             `json:"Size"`
	GraphDriver  graphDriver       `json:"GraphDriver"`
	RootFS       rootFS            `json:"RootFS"`
	Metadata     map[string]string `json:"Metadata"`
}

type graphDriver struct {
	Data map[string]string `json:"Data"`
	Name string            `json:"Name"`
}

type rootFS struct {
	Type   string   `json:"Type"`
	Layers []string `json:"Layers"`
}

func runInspect(cmd *command, args []string) int {
	fset, a := inspectFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		return usageError(cmd, "want at least one IMAGE")
	}
	s, err := a.open()
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	out := []imageInspect{}
	status := exitOK
	for _, ref := range pos {
		img, err := s.Image(ref)
		if err != nil {
			fmt.Fprintf(os.Stderr, "unionfuse inspect: %v\n", err)
			status = exitFail
			continue
		}
		out = append(out, inspectImage(s, img))
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "    ")
	enc.Encode(out)
	return status
}

func inspectImage(s *cowcache.Store, img cowcache.Image) imageInspect {
	cfg := img.Config
	ii := imageInspect{
		ID: img.ID.String(), RepoTags: img.Names, RepoDigests: []string{},
		Created: cfg.Created.Format("2006-01-02T15:04:05.999999999Z07:00"), Author: cfg.Author,
		Config: cfg.Config, Architecture: cfg.Architecture, Os: cfg.OS, Size: img.Size,
		GraphDriver: graphDriver{Name: "unionfuse", Data: s.GraphDriverData(img)},
		RootFS:      rootFS{Type: "layers"},
		Metadata:    map[string]string{},
	}
	if ii.RepoTags == nil {
		ii.RepoTags = []string{}
	}
	if rd, err := s.RepoDigests(); err == nil && rd[img.Manifest] != nil {
		ii.RepoDigests = rd[img.Manifest]
	}
	if n := len(cfg.History); n > 0 {
		ii.Comment = cfg.History[n-1].Comment
	}
	for _, d := range cfg.RootFS.DiffIDs {
		ii.RootFS.Layers = append(ii.RootFS.Layers, d.String())
	}
	return ii
}
