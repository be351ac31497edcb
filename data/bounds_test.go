package data

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetcal/fleetcal/pipeline"
)

const mib = 1 << 20

// zeroDeflate returns a raw deflate stream (best compression) of prefix
// followed by chunks MiB of zero bytes, and the CRC-32 of that content.
// Deflating a gigabyte takes seconds, so the stream is built as deflate
// allows: the block that encodes one MiB of zeros after a MiB of zeros
// (a sync flush aligns it to a byte; its back-references reach 32 KiB)
// is the same wherever it is, and is repeated.
func zeroDeflate(t testing.TB, prefix []byte, chunks int) ([]byte, uint32) {
	t.Helper()
	if chunks < 2 {
		t.Fatal("zeroDeflate: at least 2 chunks")
	}
	zero := make([]byte, mib)
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(prefix)
	fw.Write(zero)
	fw.Flush()
	a := buf.Len()
	fw.Write(zero)
	fw.Flush()
	b := buf.Len()
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()
	out := slices.Concat(raw[:b], bytes.Repeat(raw[a:b], chunks-2), raw[b:])
	crc := crc32.ChecksumIEEE(prefix)
	for range chunks {
		crc = crc32.Update(crc, crc32.IEEETable, zero)
	}
	return out, crc
}

// npzBomb writes dir/bomb.npz: one float32 array "x" of shape
// (1, chunks*MiB/4), all zeros, deflated; chunks 1200 is the issue's
// 1.2 MB file declaring 1.2 GB.
func npzBomb(t testing.TB, dir string, chunks int) string {
	t.Helper()
	head := rawNpy("<f4", false, fmt.Sprintf("(1, %d)", chunks*mib/4), nil)
	body, crc := zeroDeflate(t, head, chunks)
	f, err := os.Create(filepath.Join(dir, "bomb.npz"))
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "x.npy", Method: zip.Deflate, CRC32: crc,
		CompressedSize64: uint64(len(body)), UncompressedSize64: uint64(len(head) + chunks*mib)})
	if err == nil {
		_, err = w.Write(body)
	}
	if err == nil {
		err = zw.Close()
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// idxBomb writes dir/train-images-idx3-ubyte.gz: chunks*MiB/784 black
// 28x28 images, gzipped; chunks 2991 is the 3 MB file of 4 M
// images (3.1 GB).
func idxBomb(t testing.TB, dir string, chunks int) string {
	t.Helper()
	var head bytes.Buffer
	head.Write([]byte{0, 0, 0x08, 3})
	for _, d := range []uint32{uint32(chunks * mib / 784), 28, 28} {
		binary.Write(&head, binary.BigEndian, d)
	}
	// 16 bytes of header and whole images: trim the zeros to a multiple of 784.
	body, crc := zeroDeflate(t, head.Bytes(), chunks)
	var gz bytes.Buffer
	gz.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}) // RFC 1952 header: deflate, no name, unknown OS
	gz.Write(body)
	size := uint32(head.Len() + chunks*mib) // ISIZE: the size mod 2^32
	gz.Write(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, crc), size))
	return writeFile(t, dir, "train-images-idx3-ubyte.gz", gz.Bytes())
}

// TestNpzBomb: a 1.2 MB .npz whose array declares 1.2 GB is refused from its
// zip directory, naming the file, the array and the limit.
func TestNpzBomb(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "calib")
	os.MkdirAll(dir, 0o755)
	file := npzBomb(t, dir, 1200)
	if st, _ := os.Stat(file); st.Size() > 2*mib {
		t.Fatalf("the bomb is %d bytes; want about 1.2 MB", st.Size())
	}
	l, err := Open(t.Context(), Config{Type: "npy", Path: "calib"}, nil, base, []pipeline.TensorInfo{in("x", pipeline.Float32, 1, -1)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Item(t.Context(), 0)
	wantErr(t, err, `sample 0 (calib/bomb.npz): npz: array "x": decodes to 1258291328 bytes, more than data_source.max_decoded_bytes (268435456)`)
	// Raised above the declared size, the limit lets the array through
	// (a smaller bomb: 8 MiB of zeros).
	small := t.TempDir()
	os.MkdirAll(filepath.Join(small, "calib"), 0o755)
	npzBomb(t, filepath.Join(small, "calib"), 8)
	for _, tc := range []struct {
		limit int64
		err   string
	}{{4 * mib, "more than data_source.max_decoded_bytes (4194304)"}, {9 * mib, ""}} {
		l, err := Open(t.Context(), Config{Type: "npy", Path: "calib", MaxDecodedBytes: tc.limit}, nil, small, []pipeline.TensorInfo{in("x", pipeline.Float32, 1, -1)})
		if err != nil {
			t.Fatal(err)
		}
		s, err := l.Item(t.Context(), 0)
		if tc.err != "" {
			wantErr(t, err, tc.err)
			continue
		}
		if err != nil || pipeline.NumElements(s.Inputs["x"].Shape) != 8*mib/4 {
			t.Errorf("limit %d: %v, shape %v; want %d values", tc.limit, err, s.Inputs["x"].Shape, 8*mib/4)
		}
	}
}

// TestIdxGzBomb: a 3 MB idx.gz of 4 M images opens without decoding its
// data, serves its first images, and says where it ends when it is cut.
func TestIdxGzBomb(t *testing.T) {
	base := t.TempDir()
	file := idxBomb(t, base, 2991)
	if st, _ := os.Stat(file); st.Size() > 4*mib {
		t.Fatalf("the bomb is %d bytes; want about 3 MB", st.Size())
	}
	l, err := Open(t.Context(), Config{Type: "idx", Path: "."}, nil, base, []pipeline.TensorInfo{in("x", 0, 1, 1, 28, 28)})
	if err != nil {
		t.Fatal(err)
	}
	if l.Len() != 2991*mib/784 { // every whole image of 2991 MiB
		t.Errorf("Len() = %d, want %d", l.Len(), 2991*mib/784)
	}
	for i := range 32 {
		s, err := l.Item(t.Context(), i)
		if err != nil {
			t.Fatal(err)
		}
		if x := s.Inputs["x"].Data.([]float32); len(x) != 784 || slices.Max(x) != 0 {
			t.Fatalf("image %d: %d values, max %v; want 784 zeros", i, len(x), slices.Max(x))
		}
	}
}

// TestIdxTooSmallForItsHeader: a gzipped header declaring more data than
// deflate can expand the file to is refused at open, before any decoding.
func TestIdxTooSmallForItsHeader(t *testing.T) {
	base := t.TempDir()
	writeFile(t, base, "train-images-idx3-ubyte.gz", idxBytes(t, []uint32{1 << 20, 28, 28}, make([]byte, 784), true))
	_, err := Open(t.Context(), Config{Type: "idx", Path: "."}, nil, base, []pipeline.TensorInfo{in("x", 0, 1, 784)})
	wantErr(t, err, "data source train-images-idx3-ubyte.gz: header declares dimensions [1048576 28 28] (822083584 bytes of data) in ",
		"gzipped bytes, more than deflate's 1032:1")
}

// TestNpzDirectoryLies: a zip directory declaring more than its compressed
// bytes can hold, or a stored array of another size, is refused before
// decoding; only the arrays the model needs are decoded.
func TestNpzDirectoryLies(t *testing.T) {
	arr := rawNpy("<f4", false, "(1, 2)", make([]byte, 8))
	tests := []struct {
		name  string
		files []*zip.FileHeader
		err   string
	}{
		{name: "deflate ratio", files: []*zip.FileHeader{{Name: "x.npy", Method: zip.Deflate, UncompressedSize64: 100 << 20}},
			err: `sample 0 (calib/s.npz): npz: array "x": zip directory declares 104857600 bytes from `},
		{name: "stored size", files: []*zip.FileHeader{{Name: "x.npy", Method: zip.Store, UncompressedSize64: 1000}},
			err: `npz: array "x": stored uncompressed in `},
		{name: "not needed", files: []*zip.FileHeader{{Name: "x.npy", Method: zip.Store}, {Name: "y.npy", Method: zip.Deflate, UncompressedSize64: 1 << 40}},
			err: `array "y" is not a model input; inputs: x`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			var buf bytes.Buffer
			zw := zip.NewWriter(&buf)
			for _, h := range tc.files {
				body := arr
				if h.Method == zip.Deflate {
					var d bytes.Buffer
					fw, _ := flate.NewWriter(&d, flate.BestCompression)
					fw.Write(arr)
					fw.Close()
					body = d.Bytes()
				}
				h.CompressedSize64, h.CRC32 = uint64(len(body)), crc32.ChecksumIEEE(arr)
				if h.UncompressedSize64 == 0 {
					h.UncompressedSize64 = uint64(len(arr))
				}
				w, err := zw.CreateRaw(h)
				if err != nil {
					t.Fatal(err)
				}
				w.Write(body)
			}
			zw.Close()
			writeFile(t, filepath.Join(base, "calib"), "s.npz", buf.Bytes())
			l, err := Open(t.Context(), Config{Type: "npy", Path: "calib"}, nil, base, []pipeline.TensorInfo{in("x", pipeline.Float32, 1, 2)})
			if err != nil {
				t.Fatal(err)
			}
			_, err = l.Item(t.Context(), 0)
			wantErr(t, err, tc.err)
		})
	}
}

// TestNpyFileLimit: a .npy file larger than the limit is refused before it
// is read.
func TestNpyFileLimit(t *testing.T) {
	base := t.TempDir()
	writeFile(t, filepath.Join(base, "calib"), "a.npy", rawNpy("<f4", false, "(1, 1024)", make([]byte, 4096)))
	l, err := Open(t.Context(), Config{Type: "npy", Path: "calib", MaxDecodedBytes: 4096}, nil, base, []pipeline.TensorInfo{in("x", pipeline.Float32, 1, 1024)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Item(t.Context(), 0)
	wantErr(t, err, "sample 0 (calib/a.npy): npy: decodes to 4224 bytes, more than data_source.max_decoded_bytes (4096)")
	if _, err := Open(t.Context(), Config{Type: "npy", Path: "calib", MaxDecodedBytes: -1}, nil, base, nil); err == nil ||
		!strings.Contains(err.Error(), "data_source.max_decoded_bytes: -1; want a positive number of bytes") {
		t.Errorf("max_decoded_bytes -1: %v", err)
	}
}

// TestIdxStream: a file above the limit is streamed; every image, in any
// order and from concurrent callers, is the one the in-memory loader
// gives, and a cut file fails at the first image it lacks, naming it.
func TestIdxStream(t *testing.T) {
	const n, side = 3000, 8 // 3000 images of 64 bytes: 192 KB
	pix := make([]byte, n*side*side)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range pix {
		pix[i] = byte(r.IntN(256))
	}
	labels := make([]byte, n)
	for i := range labels {
		labels[i] = byte(i % 10)
	}
	input := []pipeline.TensorInfo{in("x", 0, 1, side*side)}
	for _, tc := range []struct {
		gz     bool
		window int // records the stream keeps
	}{{false, 1 << 20}, {true, 1 << 20}, {false, 7}, {true, 7}, {true, 1}} {
		gz := tc.gz
		t.Run(fmt.Sprintf("gz=%v/window=%d", gz, tc.window), func(t *testing.T) {
			defer func(w int) { idxWindowBytes = w }(idxWindowBytes)
			idxWindowBytes = tc.window * side * side
			base := t.TempDir()
			ext := map[bool]string{true: ".gz"}[gz]
			writeFile(t, base, "train-images-idx3-ubyte"+ext, idxBytes(t, []uint32{n, side, side}, pix, gz))
			writeFile(t, base, "train-labels-idx1-ubyte"+ext, idxBytes(t, []uint32{n}, labels, gz))
			whole, err := Open(t.Context(), Config{Type: "idx", Path: "."}, nil, base, input)
			if err != nil {
				t.Fatal(err)
			}
			// 1000 bytes: the images and the labels are both streamed.
			streamed, err := Open(t.Context(), Config{Type: "idx", Path: ".", MaxDecodedBytes: 1000}, nil, base, input)
			if err != nil {
				t.Fatal(err)
			}
			if s := streamed.(*idxLoader).pixels.s; s == nil || streamed.(*idxLoader).labels.s == nil {
				t.Fatal("the loader is not streaming")
			}
			order := append(r.Perm(n), 0, n-1, 5, 4, 3)
			errs := make(chan error, 2)
			for part := range 2 {
				go func() {
					for _, i := range order[part*len(order)/2 : (part+1)*len(order)/2] {
						a, err := whole.Item(t.Context(), i)
						if err != nil {
							errs <- err
							return
						}
						b, err := streamed.Item(t.Context(), i)
						if err != nil {
							errs <- err
							return
						}
						if !slices.Equal(a.Inputs["x"].Data.([]float32), b.Inputs["x"].Data.([]float32)) || a.Annotation != b.Annotation {
							errs <- fmt.Errorf("image %d differs: label %v, want %v", i, b.Annotation, a.Annotation)
							return
						}
					}
					errs <- nil
				}()
			}
			for range 2 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	base := t.TempDir()
	writeFile(t, base, "train-images-idx3-ubyte.gz", truncate(idxBytes(t, []uint32{n, side, side}, pix, true), 20000))
	l, err := Open(t.Context(), Config{Type: "idx", Path: ".", MaxDecodedBytes: 1000}, nil, base, input)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Item(t.Context(), 10); err != nil {
		t.Fatal(err)
	}
	_, err = l.Item(t.Context(), n-1)
	wantErr(t, err, "sample 2999 (train-images-idx3-ubyte.gz): truncated: the data ends before record 2999 of the 3000 the header declares")
}

// envRSSChild makes the test binary a child that opens a bomb and prints
// its peak RSS (see TestBombPeakRSS).
const envRSSChild = "FLEETCAL_DATA_RSS_CHILD"

// TestBombPeakRSS reads the two bombs in a child process each and
// checks its peak resident memory (VmHWM) stays under 200 MB: the .npz is
// refused from its directory, and 32 images of the idx.gz are decoded.
func TestBombPeakRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 3 MB idx.gz bomb and runs children")
	}
	base := t.TempDir()
	os.MkdirAll(filepath.Join(base, "calib"), 0o755)
	npzBomb(t, filepath.Join(base, "calib"), 1200)
	idxBomb(t, base, 2991)
	kinds := []string{"npz", "idx"}
	if os.Getenv("FLEETCAL_DATA_RSS_FULL") != "" { // for BENCHMARKS.md: stream the whole 3.1 GB
		kinds = append(kinds, "idx-last")
	}
	for _, kind := range kinds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestBombRSSChild$", "-test.v")
		cmd.Env = append(os.Environ(), envRSSChild+"="+kind+":"+base)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		took := time.Since(start)
		if err != nil {
			t.Fatalf("%s child: %v\n%s", kind, err, out)
		}
		var kb int
		for l := range strings.Lines(string(out)) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "VmHWM_kB="); ok {
				kb, _ = strconv.Atoi(v)
			}
		}
		t.Logf("%s bomb: peak RSS %.1f MB (child %s)", kind, float64(kb)/1000, took.Round(time.Millisecond))
		if kb == 0 || kb > 200_000 {
			t.Errorf("%s bomb: peak RSS %d kB, want under 200 MB\n%s", kind, kb, out)
		}
	}
}

// TestBombRSSChild is the child of TestBombPeakRSS; it does nothing
// unless envRSSChild is set ("npz:DIR", "idx:DIR"; "idx-last:DIR" reads
// the last 32 images of the idx bomb, decoding all of it, for
// BENCHMARKS.md).
func TestBombRSSChild(t *testing.T) {
	kind, base, ok := strings.Cut(os.Getenv(envRSSChild), ":")
	if !ok {
		t.Skip("run by TestBombPeakRSS")
	}
	switch kind {
	case "npz":
		l, err := Open(t.Context(), Config{Type: "npy", Path: "calib"}, nil, base, []pipeline.TensorInfo{in("x", pipeline.Float32, 1, -1)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Item(t.Context(), 0); err == nil {
			t.Fatal("the npz bomb was read")
		}
	case "idx", "idx-last":
		l, err := Open(t.Context(), Config{Type: "idx", Path: "."}, nil, base, []pipeline.TensorInfo{in("x", 0, 1, 1, 28, 28)})
		if err != nil {
			t.Fatal(err)
		}
		want := []int{}
		for i := range 32 {
			want = append(want, i)
		}
		if kind == "idx-last" { // the whole stream: the last 32 images
			for i := range want {
				want[i] += l.Len() - 32
			}
		}
		for _, i := range want {
			if _, err := l.Item(t.Context(), i); err != nil {
				t.Fatal(err)
			}
		}
	}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			fmt.Printf("VmHWM_kB=%s\n", strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		}
	}
}
