package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/cowcache"
)

var imagesCmd = &command{
	name:  "images",
	usage: "unionfuse images [-q] [-a] [--digests] [--no-trunc] [--format table|json]",
	help: `List the images in the layer store, newest first: one line per name
(REPOSITORY TAG), images without a name as <none> <none>. SIZE is the sum of
the image's layers; layers shared between images count in each of them
(see 'unionfuse system df -v' for shared and unique sizes).`,
	options: optionsOf(imagesFlags),
	run:     runImages,
}

type imagesArgs struct {
	storeFlags
	quiet, all, noTrunc, digests bool
	format                       string
}

func imagesFlags() (*pflag.FlagSet, *imagesArgs) {
	a := &imagesArgs{}
	fset := pflag.NewFlagSet("images", pflag.ContinueOnError)
	a.add(fset)
	fset.BoolVarP(&a.quiet, "quiet", "q", false, "print only image ids, each once")
	fset.BoolVarP(&a.all, "all", "a", false, "show intermediate images too (the unnamed steps of builds)")
	fset.BoolVar(&a.noTrunc, "no-trunc", false, "print full image ids")
	fset.BoolVar(&a.digests, "digests", false, "show the registry digest of each repository (DIGEST)")
	fset.StringVar(&a.format, "format", "table", "`table` or json (one JSON object per line)")
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
}

func runImages(cmd *command, args []string) int {
	fset, a := imagesFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageError(cmd, "unexpected argument %q", pos[0])
	}
	if a.format != "table" && a.format != "json" {
		return usageError(cmd, "--format: want table or json, not %q", a.format)
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
	if !a.all {
		hidden := cowcache.Intermediate(images)
		shown := images[:0]
		for _, img := range images {
			if !hidden[img.ID] {
				shown = append(shown, img)
			}
		}
		images = shown
	}
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
		}
	}
	if a.format == "json" {
		enc := json.NewEncoder(os.Stdout)
		for _, r := range rows {
			enc.Encode(r)
		}
		return exitOK
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
