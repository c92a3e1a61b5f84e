package runner

import (
	"maps"

	"github.com/unionfuse/unionfuse/cowcache"
)

// journal records a container event in the store's journal, with
// docker's attributes (image, name, the container's labels) and attrs
// (KEY, VALUE pairs: exitCode, signal...).
func (r *Runner) journal(c *Container, action string, attrs ...string) {
	if c.Config.Transient {
		return // a build step's: docker's builder logs none either
	}
	a := map[string]string{"image": c.ImageName, "name": c.Name}
	if a["image"] == "" && c.Image != "" {
		a["image"] = c.Image.String()
	}
	maps.Copy(a, c.Config.Labels)
	for i := 0; i+1 < len(attrs); i += 2 {
		a[attrs[i]] = attrs[i+1]
	}
	r.store.AppendEvent(cowcache.Event{Type: "container", Action: action, Actor: cowcache.EventActor{ID: c.ID, Attributes: a}})
}
