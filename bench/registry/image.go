package main

import (
	"archive/tar"
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/gzip"
)

// words make the text files: compressible, as source code and logs are.
var words = strings.Fields(`the layer image registry manifest digest blob pull push tag
config index platform compress gzip stream write read file directory link owner mode
time size byte chunk range request response header token auth user repository mount
upper lower work merged whiteout opaque redirect origin index inode kernel fuse daemon`)

// writeLayer writes a gzip-compressed layer tarball of about size bytes
// to path: half random bytes in files of 1-4 MiB (incompressible, as
// binaries and compressed assets), half text in files of 16-64 KiB. The
// content is a function of seed.
func writeLayer(path string, seed uint64, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	zw, err := gzip.NewWriterLevel(bw, gzip.DefaultCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	src := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 'u', 'f'})
	rng := rand.New(src)
	dir := fmt.Sprintf("layer%d", seed)
	for _, d := range []string{dir, dir + "/bin", dir + "/text"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755}); err != nil {
			return err
		}
	}
	buf := make([]byte, 4<<20)
	for n, i := int64(0), 0; n < size/2; i++ {
		sz := int64(1<<20 + rng.IntN(3<<20))
		src.Read(buf[:sz])
		if err := addFile(tw, fmt.Sprintf("%s/bin/blob%03d", dir, i), buf[:sz]); err != nil {
			return err
		}
		n += sz
	}
	for n, i := int64(0), 0; n < size/2; i++ {
		var sb strings.Builder
		for want := 16<<10 + rng.IntN(48<<10); sb.Len() < want; {
			for w := 0; w < 12; w++ {
				sb.WriteString(words[rng.IntN(len(words))])
				sb.WriteByte(' ')
			}
			fmt.Fprintf(&sb, "%d\n", rng.IntN(100000))
		}
		if err := addFile(tw, fmt.Sprintf("%s/text/file%05d.txt", dir, i), []byte(sb.String())); err != nil {
			return err
		}
		n += int64(sb.Len())
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func addFile(tw *tar.Writer, name string, data []byte) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data))}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// testImages writes the layers to dir and pushes to host two images:
// bench:v1 of n layers of layerSize bytes each, and bench:v2, the same
// layers plus one of extraSize. It returns the compressed size of
// bench:v1's layers and of the extra one.
func testImages(dir, host string, n int, layerSize, extraSize int64) (compressed, extra int64, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, 0, err
	}
	var layers []v1.Layer
	for i := 0; i <= n; i++ {
		size := layerSize
		if i == n {
			size = extraSize
		}
		p := filepath.Join(dir, fmt.Sprintf("layer%d.tar.gz", i))
		if err := writeLayer(p, uint64(i+1), size); err != nil {
			return 0, 0, fmt.Errorf("layer %d: %w", i, err)
		}
		l, err := tarball.LayerFromFile(p)
		if err != nil {
			return 0, 0, err
		}
		st, err := os.Stat(p)
		if err != nil {
			return 0, 0, err
		}
		if i < n {
			compressed += st.Size()
		} else {
			extra = st.Size()
		}
		layers = append(layers, l)
	}
	for _, img := range []struct {
		tag    string
		layers []v1.Layer
	}{{"v1", layers[:n]}, {"v2", layers}} {
		im, err := mutate.AppendLayers(empty.Image, img.layers...)
		if err != nil {
			return 0, 0, err
		}
		cf, err := im.ConfigFile()
		if err != nil {
			return 0, 0, err
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", runtime.GOARCH
		cf.Config.Cmd = []string{"/bin/sh"}
		if im, err = mutate.ConfigFile(im, cf); err != nil {
			return 0, 0, err
		}
		ref, err := name.ParseReference(host+"/bench:"+img.tag, name.Insecure)
		if err != nil {
			return 0, 0, err
		}
		if err := remote.Write(ref, im); err != nil {
			return 0, 0, fmt.Errorf("push bench:%s: %w", img.tag, err)
		}
	}
	return compressed, extra, nil
}
