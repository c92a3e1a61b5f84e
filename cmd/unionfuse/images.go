package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/internal/format"
)

var imagesCmd = &command{
	name:  "images",
	usage: "unionfuse images [-q] [-a] [--digests] [--no-trunc] [--filter K=V]... [--format FORMAT] [REPOSITORY[:TAG]]",
	help: `List the images in the layer store, newest first: one line per name
(REPOSITORY TAG), images without a name as <none> <none>. SIZE is the sum of
the image's layers; layers shared between images count in each of them
(see 'unionfuse system df -v' for shared and unique sizes).
REPOSITORY[:TAG] shows only the names it matches (as reference=).
--filter takes docker's dangling=true|false, label=KEY[=VALUE], before=IMAGE,
since=IMAGE and reference=PATTERN (a path.Match pattern on REPOSITORY:TAG or
REPOSITORY); values of one key are alternatives, keys must all match.
--format takes a Go template (see docs/run.md) with the fields ID,
Repository, Tag, Digest, CreatedSince, CreatedAt, Size and VirtualSize, and
Partial (not docker's): for an image pulled lazily whose data is not all
local yet, "N of M layers partial, X of Y local", else empty;
"table ..." prints a header, json one JSON object per line.`,
	options: optionsOf(imagesFlags),
	run:     runImages,
}

type imagesArgs struct {
	storeFlags
	quiet, all, noTrunc, digests bool
	format                       string
	filters                      []string
}

func imagesFlags() (*pflag.FlagSet, *imagesArgs) {
	a := &imagesArgs{}
	fset := pflag.NewFlagSet("images", pflag.ContinueOnError)
	a.add(fset)
	fset.BoolVarP(&a.quiet, "quiet", "q", false, "print only image ids, each once")
	fset.BoolVarP(&a.all, "all", "a", false, "show intermediate images too (the unnamed steps of builds)")
	fset.BoolVar(&a.noTrunc, "no-trunc", false, "print full image ids")
	fset.BoolVar(&a.digests, "digests", false, "show the registry digest of each repository (DIGEST)")
	fset.StringArrayVarP(&a.filters, "filter", "f", nil, "show only images that match `KEY=VALUE`")
	fset.StringVar(&a.format, "format", "", "print each image through the Go `TEMPLATE`, or json")
	return fset, a
}

// imageRow is one line of unionfuse images, also its JSON form.
type imageRow struct {
	Repository   string
	Tag          string
	Digest       string
	ID           string
	CreatedAt    string
	CreatedSince string
	Size         string
	VirtualSize  string
	Partial      string `json:",omitempty"`
}

// imagesHeader is the header of an images table, by field.
var imagesHeader = map[string]string{"Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "ID": "IMAGE ID",
	"CreatedAt": "CREATED AT", "CreatedSince": "CREATED", "Size": "SIZE", "VirtualSize": "VIRTUAL SIZE", "Partial": "PARTIAL"}

func runImages(cmd *command, args []string) int {
	fset, a := imagesFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) > 1 {
		return usageError(cmd, "unexpected argument %q", pos[1])
	}
	if len(pos) == 1 {
		a.filters = append(a.filters, "reference="+pos[0])
	}
	filter, err := parseImagesFilter(a.filters)
	if err != nil {
		return usageError(cmd, "%v", err)
	}
	var out *format.Writer
	if !format.IsDefault(a.format) {
		if out, err = format.New(os.Stdout, a.format, imagesHeader); err != nil {
			return usageError(cmd, "%v", err)
		}
	}
	s, err := a.open()
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	images, err := s.Images()
	if err != nil {
		return fail(err)
	}
	bounds, err := filter.bounds(s)
	if err != nil {
		return fail(err)
	}
	hidden := map[cowcache.Digest]bool{}
	if !a.all {
		hidden = cowcache.Intermediate(images)
	}
	shown := images[:0]
	for _, img := range images {
		names, ok := filter.names(img)
		if !hidden[img.ID] && ok && filter.match(img, bounds) {
			img.Names = names
			shown = append(shown, img)
		}
	}
	images = shown
	if a.quiet {
		for _, img := range images {
			fmt.Println(imageID(img.ID, a.noTrunc))
		}
		return exitOK
	}
	repoDigests, err := s.RepoDigests()
	if err != nil {
		return fail(err)
	}
	var rows []imageRow
	for _, img := range images {
		names := img.Names
		if len(names) == 0 {
			names = []string{"<none>:<none>"}
		}
		for _, n := range names {
			repo, tag := cowcache.SplitName(n)
			rows = append(rows, imageRow{Repository: repo, Tag: tag, Digest: repoDigest(repoDigests[img.Manifest], repo), ID: imageID(img.ID, a.noTrunc),
				CreatedAt: img.Created.Format("2006-01-02 15:04:05 -0700 MST"), CreatedSince: since(img.Created),
				Size: sizeString(img.Size), VirtualSize: sizeString(img.Size)})
			if out != nil {
				rows[len(rows)-1].Partial = s.PartialImageSummary(img)
			}
		}
	}
	if out != nil {
		return printRows(out, rows)
	}
	tw := newTable()
	if a.digests {
		fmt.Fprintln(tw, "REPOSITORY\tTAG\tDIGEST\tIMAGE ID\tCREATED\tSIZE")
	} else {
		fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE")
	}
	for _, r := range rows {
		if a.digests {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Repository, r.Tag, r.Digest, r.ID, r.CreatedSince, r.Size)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Repository, r.Tag, r.ID, r.CreatedSince, r.Size)
		}
	}
	tw.Flush()
	return exitOK
}

// repoDigest returns the digest among an image's REPOSITORY@DIGEST
// records that is repo's, or "<none>" (docker images --digests).
func repoDigest(records []string, repo string) string {
	for _, rd := range records {
		if r, d, _ := strings.Cut(rd, "@"); r == repo {
			return d
		}
	}
	return "<none>"
}
