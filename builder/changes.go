package builder

import (
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// changeCommands are the Dockerfile instructions docker commit and
// import take in --change.
var changeCommands = map[string]bool{"CMD": true, "ENTRYPOINT": true, "ENV": true, "EXPOSE": true,
	"LABEL": true, "ONBUILD": true, "USER": true, "VOLUME": true, "WORKDIR": true, "STOPSIGNAL": true}

// ApplyChanges applies the Dockerfile instructions of docker commit's and
// import's -c/--change to cfg, parsed as a Dockerfile is: CMD,
// ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR and STOPSIGNAL
// change the config as in a build; ONBUILD's instruction is kept in the
// config's OnBuild (as docker, for a build on the image; unionfuse build
// refuses it there). Others are refused, as docker refuses them.
func ApplyChanges(cfg *v1.Config, changes []string) error {
	for _, change := range changes {
		res, err := parser.Parse(strings.NewReader(change))
		if err != nil {
			return fmt.Errorf("invalid change %q: %w", change, err)
		}
		for _, node := range res.AST.Children {
			name := strings.ToUpper(node.Value)
			if !changeCommands[name] {
				return fmt.Errorf("%s is not a valid change command", name)
			}
			if name == "ONBUILD" {
				cfg.OnBuild = append(cfg.OnBuild, strings.TrimSpace(node.Original[len("ONBUILD"):]))
				continue
			}
			cmd, err := instructions.ParseInstruction(node)
			if err != nil {
				return fmt.Errorf("invalid change %q: %w", change, err)
			}
			if w, ok := cmd.(*instructions.WorkdirCommand); ok {
				cfg.WorkingDir = workdir(cfg, w.Path)
				continue
			}
			if _, _, err := applyMeta(cfg, cmd.(instructions.Command)); err != nil {
				return fmt.Errorf("invalid change %q: %w", change, err)
			}
		}
	}
	return nil
}
