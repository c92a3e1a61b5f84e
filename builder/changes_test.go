package builder

import (
	"reflect"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestApplyChanges(t *testing.T) {
	cfg := v1.Config{Cmd: []string{"old"}, WorkingDir: "/app"}
	err := ApplyChanges(&cfg, []string{`CMD ["x", "y"]`, "ENV A=1 B=2", "EXPOSE 80", "LABEL k=v", "USER 7",
		"VOLUME /data", "WORKDIR sub", "ONBUILD RUN echo hi", "ENTRYPOINT /bin/e"})
	if err != nil {
		t.Fatal(err)
	}
	want := v1.Config{Env: []string{"A=1", "B=2"}, ExposedPorts: map[string]struct{}{"80/tcp": {}},
		Labels: map[string]string{"k": "v"}, User: "7", Volumes: map[string]struct{}{"/data": {}},
		WorkingDir: "/app/sub", OnBuild: []string{"RUN echo hi"}, Entrypoint: []string{"/bin/sh", "-c", "/bin/e"}}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got %+v\nwant %+v", cfg, want)
	}
	cfg = v1.Config{}
	if err := ApplyChanges(&cfg, []string{`CMD ["x"]`}); err != nil || !reflect.DeepEqual(cfg.Cmd, []string{"x"}) {
		t.Errorf("CMD: %v %v", cfg.Cmd, err)
	}
	for _, bad := range []string{"RUN true", "FROM busybox", "COPY a b"} {
		if err := ApplyChanges(&v1.Config{}, []string{bad}); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
