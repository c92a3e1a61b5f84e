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

// words make the small files: compressible, as source code and
// configuration are.
var words = strings.Fields(`the layer image registry manifest digest blob pull push tag
config index platform compress gzip stream write read file directory link owner mode
time size byte chunk range request response header token auth user repository mount`)

// busyboxApplets are the commands the measurements run.
var busyboxApplets = []string{"sh", "cat", "find", "wc"}

// writeImage writes the image's layers to dir and pushes it to ref as a
// gzip image: a first layer with busybox (Debian's static one) and
// smallFile, then cfg.Layers-1 layers sharing cfg.Size bytes and
// cfg.Files files. Half of each layer's bytes are in random files of
// 1–8 MB (incompressible, as binaries), half in text files of equal
// size. The content is a function of the layer's number.
func writeImage(dir, ref string, cfg *config) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var layers []v1.Layer
	for i := 0; i < cfg.Layers; i++ {
		p := filepath.Join(dir, fmt.Sprintf("layer%d.tar.gz", i))
		var err error
		if i == 0 {
			err = writeBaseLayer(p)
		} else {
			n := cfg.Layers - 1
			err = writeDataLayer(p, i, cfg.Size/int64(n), cfg.Files/n)
		}
		if err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
		l, err := tarball.LayerFromFile(p)
		if err != nil {
			return err
		}
		layers = append(layers, l)
	}
	im, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return err
	}
	cf, err := im.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Cmd = []string{"/bin/sh"}
	cf.Config.Env = []string{"PATH=/bin"}
	if im, err = mutate.ConfigFile(im, cf); err != nil {
		return err
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	if err := remote.Write(r, im); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}

// layerWriter is a gzip-compressed layer tarball being written.
type layerWriter struct {
	f  *os.File
	bw *bufio.Writer
	zw *gzip.Writer
	tw *tar.Writer
}

func newLayerWriter(path string) (*layerWriter, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	zw, err := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &layerWriter{f: f, bw: bw, zw: zw, tw: tar.NewWriter(zw)}, nil
}

func (w *layerWriter) dir(name string) error {
	return w.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755})
}

func (w *layerWriter) file(name string, mode int64, data []byte) error {
	if err := w.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))}); err != nil {
		return err
	}
	_, err := w.tw.Write(data)
	return err
}

func (w *layerWriter) close() error {
	defer w.f.Close()
	for _, err := range []error{w.tw.Close(), w.zw.Close(), w.bw.Flush()} {
		if err != nil {
			return err
		}
	}
	return w.f.Close()
}

// writeBaseLayer writes busybox, its applets and smallFile.
func writeBaseLayer(path string) error {
	bb, err := os.ReadFile("/usr/bin/busybox")
	if err != nil {
		return fmt.Errorf("needs Debian's busybox-static: %w", err)
	}
	w, err := newLayerWriter(path)
	if err != nil {
		return err
	}
	if err := w.dir("bin"); err != nil {
		return err
	}
	if err := w.file("bin/busybox", 0o755, bb); err != nil {
		return err
	}
	for _, a := range busyboxApplets {
		if err := w.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777}); err != nil {
			return err
		}
	}
	if err := w.file(strings.TrimPrefix(smallFile, "/"), 0o644, []byte("small\n")); err != nil {
		return err
	}
	return w.close()
}

// writeDataLayer writes layer i: about size bytes in about files files,
// in directories of 100.
func writeDataLayer(path string, i int, size int64, files int) error {
	w, err := newLayerWriter(path)
	if err != nil {
		return err
	}
	src := rand.NewChaCha8([32]byte{byte(i), byte(i >> 8), 'l', 'z'})
	rng := rand.New(src)
	top := fmt.Sprintf("layer%d", i)
	if err := w.dir(top); err != nil {
		return err
	}
	// The large files first take half of the bytes.
	var large int
	buf := make([]byte, 8<<20)
	for n := int64(0); n < size/2; large++ {
		sz := min(int64(1<<20+rng.IntN(7<<20)), size/2-n+1)
		src.Read(buf[:sz])
		if large == 0 {
			if err := w.dir(top + "/large"); err != nil {
				return err
			}
		}
		if err := w.file(fmt.Sprintf("%s/large/blob%03d", top, large), 0o644, buf[:sz]); err != nil {
			return err
		}
		n += sz
	}
	small := max(files-large, 1)
	each := int((size - size/2) / int64(small))
	var sb strings.Builder
	for f := 0; f < small; f++ {
		if f%100 == 0 {
			if err := w.dir(fmt.Sprintf("%s/d%03d", top, f/100)); err != nil {
				return err
			}
		}
		sb.Reset()
		for sb.Len() < each {
			sb.WriteString(words[rng.IntN(len(words))])
			sb.WriteByte(' ')
			if rng.IntN(12) == 0 {
				fmt.Fprintf(&sb, "%d\n", rng.IntN(100000))
			}
		}
		if err := w.file(fmt.Sprintf("%s/d%03d/f%05d.txt", top, f/100, f), 0o644, []byte(sb.String()[:each])); err != nil {
			return err
		}
	}
	return w.close()
}
