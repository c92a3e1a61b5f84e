package main

import (
	"encoding/json"
	"fmt"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/internal/format"
	"github.com/unionfuse/unionfuse/runner"
)

var inspectCmd = &command{
	name:  "inspect",
	usage: "unionfuse inspect [-f FORMAT] [--type container|image] NAME|ID...",
	help: `Print a JSON array describing each container or image, in the shape of
docker inspect; with -f, the Go template FORMAT run on each instead (see
docs/run.md: {{.State.Pid}}, {{json .Config}}, ...). A name is looked up
as a container first, then as an image, as docker does; --type limits
the search to one kind. GraphDriver.Data has the layer directories in
overlay's terms. For a container: UpperDir its own layer, LowerDir its
init layer and the image's layers, top first and colon-separated,
MergedDir its root while it runs. For an image: UpperDir the top layer,
LowerDir the layers below it (absent for a one-layer image); MergedDir and
WorkDir are where the top layer's union and work directory would be.`,
	options: optionsOf(inspectFlags),
	run:     runInspect,
}

type inspectArgs struct {
	storeFlags
	format, kind string
}

func inspectFlags() (*pflag.FlagSet, *inspectArgs) {
	a := &inspectArgs{}
	fset := pflag.NewFlagSet("inspect", pflag.ContinueOnError)
	a.add(fset)
	fset.StringVarP(&a.format, "format", "f", "", "print each through the Go template `FORMAT` (docker's helpers: json, join, upper, ...)")
	fset.StringVar(&a.kind, "type", "", "look up only a `container` or an image")
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
		return usageError(cmd, "want at least one NAME or ID")
	}
	if a.kind != "" && a.kind != "container" && a.kind != "image" {
		return usageError(cmd, "--type: want container or image, not %q", a.kind)
	}
	var out *format.Writer
	if a.format != "" {
		w, err := format.New(os.Stdout, a.format, nil)
		if err != nil {
			return usageError(cmd, "%v", err)
		}
		out = w
	}
	s, err := a.open()
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	r := runner.New(s)
	found := []any{}
	status := exitOK
	for _, ref := range pos {
		v, err := a.lookup(r, ref)
		if err == nil && out != nil {
			err = out.Write(v)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "unionfuse inspect: %v\n", err)
			status = exitFail
			continue
		}
		found = append(found, v)
	}
	if out != nil {
		out.Flush()
		return status
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "    ")
	enc.Encode(found)
	return status
}

// lookup finds ref as docker inspect does: a container first, then an
// image, unless --type names one kind.
func (a *inspectArgs) lookup(r *runner.Runner, ref string) (any, error) {
	if a.kind != "image" {
		c, err := r.Get(ref)
		if err == nil {
			return inspectContainer(r.Store(), c), nil
		}
		if a.kind == "container" {
			return nil, err
		}
	}
	img, err := r.Store().Image(ref)
	if err != nil {
		if a.kind == "image" {
			return nil, err
		}
		return nil, fmt.Errorf("no such object: %s", ref)
	}
	return inspectImage(r.Store(), img), nil
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
