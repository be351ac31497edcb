package model

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/fleetcal/fleetcal/model/onnxpb"
)

// LoadFile reads an ONNX model file. Tensors stored as external data are read
// from their files (their location resolves against the model's folder and
// may not leave it) into raw_data, so the returned proto is self-contained.
// Errors name the file and wrap ErrNotONNX, ErrTruncated, ErrNoGraph,
// ErrMissingWeights or ErrExternalData.
func LoadFile(path string) (*onnxpb.ModelProto, error) {
	p, _, err := loadFile(path, "")
	return p, err
}

// LoadBytes decodes an ONNX model held in memory. name is the file the bytes
// came from: it appears in errors, and external data resolves against its
// folder.
func LoadBytes(name string, data []byte) (*onnxpb.ModelProto, error) {
	p, _, err := decode(name, data, "")
	return p, err
}

// loadFile loads path; weights, if not "", replaces the location of every
// external tensor. It reports whether the model had external data.
func loadFile(path, weights string) (*onnxpb.ModelProto, bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, fmt.Errorf("model file %q does not exist", path)
		}
		return nil, false, fmt.Errorf("model file %q: %w", path, err)
	}
	return decode(path, data, weights)
}

func decode(name string, data []byte, weights string) (*onnxpb.ModelProto, bool, error) {
	if len(data) == 0 {
		return nil, false, fmt.Errorf("%s: %w: empty file", name, ErrNotONNX)
	}
	if err := scanModel(data); err != nil {
		return nil, false, fmt.Errorf("%s: %w", name, err)
	}
	p := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(data, p); err != nil {
		return nil, false, fmt.Errorf("%s: %w: %v", name, ErrNotONNX, err)
	}
	if p.IrVersion == nil && p.Graph == nil {
		return nil, false, fmt.Errorf("%s: %w: no ir_version and no graph", name, ErrNotONNX)
	}
	if p.Graph == nil {
		return nil, false, fmt.Errorf("%s: %w", name, ErrNoGraph)
	}
	if p.GetIrVersion() <= 0 {
		return nil, false, fmt.Errorf("%s: %w: ir_version %d", name, ErrNotONNX, p.GetIrVersion())
	}
	ext, err := loadExternalData(name, p, weights)
	if err != nil {
		return nil, false, err
	}
	return p, ext, nil
}

// scanModel walks the top-level protobuf fields of a ModelProto without
// decoding them, to tell a truncated file (a field running past the end)
// from bytes that are not a ModelProto at all.
func scanModel(b []byte) error {
	fields := (&onnxpb.ModelProto{}).ProtoReflect().Descriptor().Fields()
	off := 0
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return wireError(protowire.ParseError(n), off)
		}
		if fd := fields.ByNumber(num); fd != nil && !wireTypeOK(fd, typ) {
			return fmt.Errorf("%w: field %d at byte %d has wire type %d, want that of %s", ErrNotONNX, num, off, typ, fd.Name())
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return wireError(protowire.ParseError(m), off)
		}
		b = b[n+m:]
		off += n + m
	}
	return nil
}

func wireError(err error, off int) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: a field starting at byte %d runs past the end of the file", ErrTruncated, off)
	}
	return fmt.Errorf("%w: invalid protobuf at byte %d: %v", ErrNotONNX, off, err)
}

func wireTypeOK(fd protoreflect.FieldDescriptor, typ protowire.Type) bool {
	switch fd.Kind() {
	case protoreflect.StringKind, protoreflect.BytesKind, protoreflect.MessageKind:
		return typ == protowire.BytesType
	case protoreflect.GroupKind:
		return typ == protowire.StartGroupType
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return typ == protowire.Fixed32Type || (fd.IsList() && typ == protowire.BytesType)
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return typ == protowire.Fixed64Type || (fd.IsList() && typ == protowire.BytesType)
	default: // varints
		return typ == protowire.VarintType || (fd.IsList() && typ == protowire.BytesType)
	}
}

// walkTensors calls fn on every tensor of p: initializers, sparse
// initializers, tensors in node attributes, in subgraphs, in functions and in
// training info. fn may modify the tensor; it stops the walk by returning an
// error.
func walkTensors(p *onnxpb.ModelProto, fn func(*onnxpb.TensorProto) error) error {
	if err := walkGraphTensors(p.GetGraph(), fn); err != nil {
		return err
	}
	for _, f := range p.GetFunctions() {
		if err := walkNodeTensors(f.GetNode(), fn); err != nil {
			return err
		}
	}
	for _, ti := range p.GetTrainingInfo() {
		if err := walkGraphTensors(ti.GetInitialization(), fn); err != nil {
			return err
		}
		if err := walkGraphTensors(ti.GetAlgorithm(), fn); err != nil {
			return err
		}
	}
	return nil
}

func walkGraphTensors(g *onnxpb.GraphProto, fn func(*onnxpb.TensorProto) error) error {
	if g == nil {
		return nil
	}
	for _, t := range g.GetInitializer() {
		if err := fn(t); err != nil {
			return err
		}
	}
	for _, s := range g.GetSparseInitializer() {
		if err := walkSparse(s, fn); err != nil {
			return err
		}
	}
	return walkNodeTensors(g.GetNode(), fn)
}

func walkSparse(s *onnxpb.SparseTensorProto, fn func(*onnxpb.TensorProto) error) error {
	for _, t := range []*onnxpb.TensorProto{s.GetValues(), s.GetIndices()} {
		if t != nil {
			if err := fn(t); err != nil {
				return err
			}
		}
	}
	return nil
}

func walkNodeTensors(nodes []*onnxpb.NodeProto, fn func(*onnxpb.TensorProto) error) error {
	for _, n := range nodes {
		for _, a := range n.GetAttribute() {
			ts := a.GetTensors()
			if a.T != nil {
				ts = append([]*onnxpb.TensorProto{a.T}, ts...)
			}
			for _, t := range ts {
				if err := fn(t); err != nil {
					return err
				}
			}
			ss := a.GetSparseTensors()
			if a.SparseTensor != nil {
				ss = append([]*onnxpb.SparseTensorProto{a.SparseTensor}, ss...)
			}
			for _, s := range ss {
				if err := walkSparse(s, fn); err != nil {
					return err
				}
			}
			gs := a.GetGraphs()
			if a.G != nil {
				gs = append([]*onnxpb.GraphProto{a.G}, gs...)
			}
			for _, g := range gs {
				if err := walkGraphTensors(g, fn); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// extRef is a parsed external_data description.
type extRef struct {
	location       string
	offset, length int64
	hasLength      bool
}

func parseExternal(t *onnxpb.TensorProto) (extRef, error) {
	var r extRef
	for _, e := range t.GetExternalData() {
		switch e.GetKey() {
		case "location":
			r.location = e.GetValue()
		case "offset", "length":
			v, err := strconv.ParseInt(e.GetValue(), 10, 64)
			if err != nil || v < 0 {
				return r, fmt.Errorf("%s %q is not a non-negative integer", e.GetKey(), e.GetValue())
			}
			if e.GetKey() == "offset" {
				r.offset = v
			} else {
				r.length, r.hasLength = v, true
			}
		}
	}
	if r.location == "" {
		return r, errors.New("no location")
	}
	return r, nil
}

// loadExternalData reads every external tensor of p into raw_data.
func loadExternalData(name string, p *onnxpb.ModelProto, weights string) (bool, error) {
	dir := filepath.Dir(name)
	files := map[string]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	found := false
	err := walkTensors(p, func(t *onnxpb.TensorProto) error {
		if !isExternal(t) {
			return nil
		}
		found = true
		r, err := parseExternal(t)
		if err != nil {
			return fmt.Errorf("%s: tensor %q: %w: %v", name, t.GetName(), ErrExternalData, err)
		}
		path := weights
		if path == "" {
			loc := filepath.FromSlash(r.location)
			if !filepath.IsLocal(loc) {
				return fmt.Errorf("%s: tensor %q: %w: location %q is outside the model's folder", name, t.GetName(), ErrExternalData, r.location)
			}
			path = filepath.Join(dir, loc)
		}
		f, ok := files[path]
		if !ok {
			f, err = os.Open(path)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("%s: %w %q (tensor %q)", name, ErrMissingWeights, path, t.GetName())
				}
				return fmt.Errorf("%s: weights file %q: %w", name, path, err)
			}
			files[path] = f
		}
		st, err := f.Stat()
		if err != nil {
			return fmt.Errorf("%s: weights file %q: %w", name, path, err)
		}
		size := st.Size()
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%s: tensor %q: %w: %q is not a regular file", name, t.GetName(), ErrExternalData, path)
		}
		if r.offset > size {
			return fmt.Errorf("%s: tensor %q: %w: offset %d is past the end of %q (%d bytes)", name, t.GetName(), ErrExternalData, r.offset, path, size)
		}
		if !r.hasLength {
			r.length = size - r.offset
		}
		if r.length > size-r.offset {
			return fmt.Errorf("%s: tensor %q: %w: offset %d + length %d is past the end of %q (%d bytes)", name, t.GetName(), ErrExternalData, r.offset, r.length, path, size)
		}
		if es := elemSize(t.GetDataType()); es > 0 {
			n, err := numElements(t.GetDims())
			if err != nil || n > r.length/es || n*es != r.length {
				return fmt.Errorf("%s: tensor %q: %w: %d bytes in %q do not hold a %s tensor of shape %v", name, t.GetName(), ErrExternalData, r.length, path, ElemTypeName(t.GetDataType()), t.GetDims())
			}
		}
		buf := make([]byte, r.length)
		if _, err := f.ReadAt(buf, r.offset); err != nil {
			return fmt.Errorf("%s: tensor %q: reading %q: %w", name, t.GetName(), path, err)
		}
		t.RawData = buf
		t.ExternalData = nil
		t.DataLocation = nil
		return nil
	})
	if err != nil {
		return false, err
	}
	if weights != "" && !found {
		if _, err := os.Stat(weights); err != nil {
			return false, fmt.Errorf("%s: %w %q", name, ErrMissingWeights, weights)
		}
	}
	return found, nil
}
