package model

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/outputs"
)

// ExternalThreshold is the smallest initializer (in bytes of raw data) that
// Save writes as external data for stages loaded with external data.
const ExternalThreshold = 1024

// SavedFile is one file set written by Save (POT's {name, model, weights}).
// Weights is "" when no tensor went to external data.
type SavedFile struct {
	Name    string `json:"name"`
	Model   string `json:"model"`
	Weights string `json:"weights,omitempty"`
}

// Marshal serializes p deterministically: the same proto gives the same
// bytes, every time and on every machine.
func Marshal(p *onnxpb.ModelProto) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("marshal model: %w", err)
	}
	return b, nil
}

// Save writes m into dir (created if needed), POT's save_model: a single
// model goes to dir/name.onnx (name defaults to m.Name), each cascade stage
// to dir/<stage name>.onnx. A stage loaded with external data has its
// initializers of ExternalThreshold bytes or more written to <file>.data,
// referenced by a relative location.
//
// Files appear together (outputs.Files): each is written to a temporary
// file in dir, synced, and renamed only once every file of m is written;
// on error the temporary files are removed and the previous files stay.
//
// forStatCollection is POT's flag that keeps stage-prefixed node names in
// cascades; fleetcal never prefixes node names, so the flag changes nothing
// and is kept for API parity.
func Save(m *CompressedModel, dir, name string, forStatCollection bool) ([]SavedFile, error) {
	_ = forStatCollection
	if m == nil || len(m.Models()) == 0 {
		return nil, errors.New("save model: no model")
	}
	if name == "" {
		name = m.Name
	}
	type plan struct {
		saved       SavedFile
		model, data []byte
	}
	var plans []plan
	seen := map[string]bool{}
	for _, s := range m.Models() {
		base := name
		if m.IsCascade() {
			base = s.Name
		}
		if !validFileName(base) {
			return nil, fmt.Errorf("save model: %q cannot be a file name", base)
		}
		if seen[base] {
			return nil, fmt.Errorf("save model: two stages named %q", base)
		}
		seen[base] = true
		if s.Proto == nil {
			return nil, fmt.Errorf("save model %q: stage has no proto", base)
		}
		file := base + ".onnx"
		pl := plan{saved: SavedFile{Name: base, Model: filepath.Join(dir, file)}}
		var err error
		if s.ExternalData {
			pl.model, pl.data, err = marshalExternal(s.Proto, file+".data")
			if len(pl.data) > 0 {
				pl.saved.Weights = filepath.Join(dir, file+".data")
			}
		} else {
			pl.model, err = Marshal(s.Proto)
		}
		if err != nil {
			return nil, fmt.Errorf("save model %q: %w", base, err)
		}
		plans = append(plans, pl)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("save model: %w", err)
	}
	// Catch what would make a rename fail before any file is renamed.
	for _, pl := range plans {
		for _, f := range []string{pl.saved.Model, pl.saved.Weights} {
			if st, err := os.Lstat(f); f != "" && err == nil && !st.Mode().IsRegular() {
				return nil, fmt.Errorf("save model: %q exists and is not a regular file", f)
			}
		}
	}

	var w outputs.Files
	for _, pl := range plans {
		if pl.saved.Weights != "" {
			if err := w.Write(pl.saved.Weights, pl.data); err != nil {
				w.Abort()
				return nil, fmt.Errorf("save model: %w", err)
			}
		}
		if err := w.Write(pl.saved.Model, pl.model); err != nil {
			w.Abort()
			return nil, fmt.Errorf("save model: %w", err)
		}
	}
	if err := w.Commit(); err != nil {
		return nil, fmt.Errorf("save model: %w", err)
	}
	out := make([]SavedFile, len(plans))
	for i, pl := range plans {
		out[i] = pl.saved
	}
	return out, nil
}

// marshalExternal marshals p with its large raw-data initializers moved to a
// data blob, referenced at location. p is not modified.
func marshalExternal(p *onnxpb.ModelProto, location string) (model, data []byte, err error) {
	g := p.GetGraph()
	if g == nil {
		model, err = Marshal(p)
		return model, nil, err
	}
	inits := make([]*onnxpb.TensorProto, len(g.GetInitializer()))
	for i, t := range g.GetInitializer() {
		inits[i] = t
		if len(t.RawData) < ExternalThreshold || isExternal(t) {
			continue
		}
		c := ShallowCopy(t)
		c.RawData = nil
		c.DataLocation = onnxpb.TensorProto_EXTERNAL.Enum()
		c.ExternalData = []*onnxpb.StringStringEntryProto{
			{Key: proto.String("location"), Value: proto.String(location)},
			{Key: proto.String("offset"), Value: proto.String(strconv.Itoa(len(data)))},
			{Key: proto.String("length"), Value: proto.String(strconv.Itoa(len(t.RawData)))},
		}
		data = append(data, t.RawData...)
		inits[i] = c
	}
	gc := ShallowCopy(g)
	gc.Initializer = inits
	pc := ShallowCopy(p)
	pc.Graph = gc
	model, err = Marshal(pc)
	return model, data, err
}
