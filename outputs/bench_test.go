package outputs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkSet writes the files of the shipped example's run (a 134668-byte
// model, a 6 KB report.json, a 9 KB report.html and a folder of pictures)
// as a set: into a new folder (one rename) and over the previous run (the
// renames with backups).
func BenchmarkSet(b *testing.B) {
	files := map[string]int{"fashion_cnn.onnx": 134668, "report.json": 6000, "report.html": 9000}
	write := func(b *testing.B, dir string) {
		s, err := Begin(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Abort()
		for name, size := range files {
			if err := WriteFile(filepath.Join(s.Dir(), name), make([]byte, size)); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.Mkdir(filepath.Join(s.Dir(), "report_files"), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := s.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("New", func(b *testing.B) {
		root := b.TempDir()
		i := 0
		for b.Loop() {
			i++
			write(b, filepath.Join(root, fmt.Sprintf("out%d", i)))
		}
	})
	b.Run("Replace", func(b *testing.B) {
		dir := filepath.Join(b.TempDir(), "out")
		write(b, dir)
		for b.Loop() {
			write(b, dir)
		}
	})
}
