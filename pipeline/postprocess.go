package pipeline

import (
	"fmt"
	"strings"
)

// Postprocess rewrites one sample's model outputs before the metric sees
// them (POT's IEEngine.postprocess_output); meta is the sample's Metadata.
// Engines call it once per sample, and it must be safe for concurrent use.
type Postprocess func(outputs map[string]Tensor, meta map[string]any) (map[string]Tensor, error)

var postprocesses = NewRegistry[Postprocess]("pipeline: postprocess")

// RegisterPostprocess makes a postprocess available by name, so that a
// fleet's workers run it where the outputs are computed (cluster.RunSpec
// names it; each worker binary registers the same function, see package
// worker). It panics when name is empty, f is nil or name is taken: these
// are programming errors.
func RegisterPostprocess(name string, f Postprocess) {
	if f == nil {
		panic("pipeline: RegisterPostprocess with a nil function")
	}
	postprocesses.Register(name, f)
}

// PostprocessNames lists the registered postprocess functions, sorted.
func PostprocessNames() []string { return postprocesses.Names() }

// LookupPostprocess returns the postprocess registered under name; an
// unknown name is an error wrapping ErrConfig that lists the known ones.
func LookupPostprocess(name string) (Postprocess, error) {
	f, ok := postprocesses.Get(name)
	if !ok {
		valid := strings.Join(PostprocessNames(), ", ")
		if valid == "" {
			valid = "none is registered (pipeline.RegisterPostprocess)"
		}
		return nil, fmt.Errorf("%w: unknown postprocess %q; valid: %s", ErrConfig, name, valid)
	}
	return f, nil
}
