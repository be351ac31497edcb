package engine

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
)

// Session is one ONNX Runtime inference session on one model: inputs by
// name in, outputs by name out. Run is safe for concurrent use; Close must
// not run concurrently with Run.
type Session struct {
	sess     *ort.DynamicAdvancedSession
	inputs   []pipeline.TensorInfo
	outputs  []pipeline.TensorInfo
	inIndex  map[string]int
	outNames []string
}

// NewSession creates a session running p's graph with threads intra-op
// threads (1 when threads < 1). It calls Init.
func NewSession(p *onnxpb.ModelProto, threads int) (*Session, error) {
	if p.GetGraph() == nil {
		return nil, fmt.Errorf("%w: model has no graph", ErrBadModel)
	}
	data, err := marshalModel(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadModel, err)
	}
	in, out := graphIO(p)
	return newSession(data, in, out, threads)
}

// newSession creates a session on a serialized model whose fed inputs and
// outputs are already known.
func newSession(data []byte, inputs, outputs []pipeline.TensorInfo, threads int) (*Session, error) {
	if err := Init(); err != nil {
		return nil, err
	}
	if len(outputs) == 0 {
		return nil, fmt.Errorf("%w: model has no outputs", ErrBadModel)
	}
	for _, o := range outputs {
		// onnxruntime_go cannot wrap a rank-0 output it allocates: say so
		// once, here, rather than fail every run.
		if o.Shape != nil && len(o.Shape) == 0 {
			return nil, fmt.Errorf("%w: output %q is a scalar (rank 0), which fleetcal cannot read back from ONNX Runtime; give it shape [1] (Reshape or Unsqueeze)", ErrBadModel, o.Name)
		}
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(max(threads, 1)); err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	s := &Session{inputs: inputs, outputs: outputs, inIndex: make(map[string]int, len(inputs))}
	inNames := make([]string, len(inputs))
	for i, in := range inputs {
		inNames[i] = in.Name
		s.inIndex[in.Name] = i
	}
	s.outNames = make([]string, len(outputs))
	for i, o := range outputs {
		s.outNames[i] = o.Name
	}
	s.sess, err = ort.NewDynamicAdvancedSessionWithONNXData(data, inNames, s.outNames, opts)
	if err != nil {
		err = unwrapORT(err)
		if rejected(err.Error()) {
			return nil, fmt.Errorf("%w: onnxruntime: %v", ErrBadModel, err)
		}
		return nil, fmt.Errorf("%w: onnxruntime: %v", ErrSession, err)
	}
	return s, nil
}

// ortRejects are the marks of ONNX Runtime's messages for a model it
// refuses to load: its type and shape inference, graph validation, the
// operator and opset registries, the protobuf parser. onnxruntime_go hands
// over only the status message (not its code), and ONNX Runtime prefixes
// some messages with a source location, so the marks are searched anywhere
// in the message. A refusal with one of these marks is ErrBadModel: the
// same model is refused on any machine. Other failures to create a session
// (an allocation failure, say) are ErrSession.
var ortRejects = []string{
	"Type Error",               // type inference: "Type Error: Type (tensor(float)) of output arg (x) ..."
	"TypeInferenceError",       // "[TypeInferenceError] ..."
	"ShapeInferenceError",      // "[ShapeInferenceError] ..."
	"This is an invalid model", // graph validation, unknown operator of a known domain
	"Invalid model",            // status INVALID_GRAPH rendered by other bindings
	"INVALID_GRAPH",            // status code names, when a message carries them
	"INVALID_PROTOBUF",
	"NOT_IMPLEMENTED",
	"Could not find an implementation for", // no kernel for an operator and type
	"is not a registered function/op",      // unknown operator of an unknown domain
	"No Op registered for",
	"Unsupported model IR version",
	"official released onnx opset versions", // an opset newer than ONNX Runtime
	"Protobuf parsing failed",
}

// rejected reports whether an ONNX Runtime message refuses the model itself.
func rejected(msg string) bool {
	for _, m := range ortRejects {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

// unwrapORT drops onnxruntime_go's wrapping ("Error creating C session: ...")
// and keeps ONNX Runtime's own message.
func unwrapORT(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// Inputs lists the inputs Run needs, with -1 for dynamic dimensions (a nil
// Shape means the rank is unknown).
func (s *Session) Inputs() []pipeline.TensorInfo { return s.inputs }

// Outputs lists the outputs Run returns.
func (s *Session) Outputs() []pipeline.TensorInfo { return s.outputs }

// Close destroys the ONNX Runtime session. It is safe to call twice.
func (s *Session) Close() error {
	if s == nil || s.sess == nil {
		return nil
	}
	err := s.sess.Destroy()
	s.sess = nil
	return err
}

// Run checks inputs against the model (every input present, element types
// and fixed dimensions equal), runs the model and returns every output. The
// returned tensors are owned by the caller. Run returns ctx.Err() soon after
// ctx ends, interrupting the inference.
func (s *Session) Run(ctx context.Context, inputs map[string]pipeline.Tensor) (map[string]pipeline.Tensor, error) {
	if s.sess == nil {
		return nil, fmt.Errorf("session: %w", ErrClosed)
	}
	if err := s.checkInputs(inputs); err != nil {
		return nil, err
	}
	in, err := s.ortInputs(inputs)
	if err != nil {
		return nil, err
	}
	defer destroyAll(in)
	outs := make([]ort.Value, len(s.outputs))
	defer destroyAll(outs)
	if err := s.run(ctx, in, outs); err != nil {
		return nil, err
	}
	res := make(map[string]pipeline.Tensor, len(outs))
	for i, v := range outs {
		t, err := fromORT(v)
		if err != nil {
			return nil, fmt.Errorf("output %q: %w", s.outNames[i], err)
		}
		res[s.outNames[i]] = t
	}
	return res, nil
}

// checkInputs validates a complete input map.
func (s *Session) checkInputs(inputs map[string]pipeline.Tensor) error {
	for _, info := range s.inputs {
		t, ok := inputs[info.Name]
		if !ok {
			return badInput("input %q missing (model inputs: %s)", info.Name, infoNames(s.inputs))
		}
		if err := checkInput(info, t); err != nil {
			return err
		}
	}
	for name := range inputs {
		if _, ok := s.inIndex[name]; !ok {
			return badInput("input %q is not a model input (model inputs: %s)", name, infoNames(s.inputs))
		}
	}
	return nil
}

func infoNames(infos []pipeline.TensorInfo) string {
	names := make([]string, len(infos))
	for i, in := range infos {
		names[i] = fmt.Sprintf("%q", in.Name)
	}
	return strings.Join(names, ", ")
}

// checkInput validates one input tensor against the model's declaration:
// same element type, same rank, equal fixed dimensions (-1 matches anything).
func checkInput(info pipeline.TensorInfo, t pipeline.Tensor) error {
	if err := t.Validate(); err != nil {
		return badInput("input %q: %w", info.Name, err)
	}
	if t.DType() != info.DType {
		return badInput("input %q: dtype %s, model wants %s", info.Name, t.DType(), info.DType)
	}
	if info.Shape == nil {
		return nil
	}
	ok := len(t.Shape) == len(info.Shape)
	for i := 0; ok && i < len(t.Shape); i++ {
		ok = info.Shape[i] < 0 || info.Shape[i] == t.Shape[i]
	}
	if !ok {
		return badInput("input %q: shape %s, model wants %s", info.Name,
			pipeline.ShapeString(t.Shape), pipeline.ShapeString(info.Shape))
	}
	return nil
}

// ortInputs wraps the inputs, in the session's order, as ONNX Runtime
// tensors sharing the Go slices. The caller destroys them.
func (s *Session) ortInputs(inputs map[string]pipeline.Tensor) ([]ort.Value, error) {
	vals := make([]ort.Value, len(s.inputs))
	for i, info := range s.inputs {
		v, err := toORT(inputs[info.Name])
		if err != nil {
			destroyAll(vals)
			return nil, fmt.Errorf("input %q: %w", info.Name, err)
		}
		vals[i] = v
	}
	return vals, nil
}

// run runs the session; nil entries of outs are allocated by ONNX Runtime
// and must be destroyed by the caller. The inference is terminated when ctx
// ends, and run then returns ctx.Err().
func (s *Session) run(ctx context.Context, in, outs []ort.Value) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var ro *ort.RunOptions
	if ctx.Done() != nil {
		var err error
		if ro, err = ort.NewRunOptions(); err != nil {
			return fmt.Errorf("run options: %w", err)
		}
		terminated := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			defer close(terminated)
			_ = ro.Terminate()
		})
		defer func() {
			if !stop() {
				<-terminated // Terminate started: let it finish before Destroy
			}
			_ = ro.Destroy()
		}()
	}
	if err := s.sess.RunWithOptions(in, outs, ro); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("onnxruntime: %v", unwrapORT(err))
	}
	return nil
}

func destroyAll(vs []ort.Value) {
	for i, v := range vs {
		if !isNilValue(v) {
			_ = v.Destroy()
			vs[i] = nil
		}
	}
}

// isNilValue tells whether v is nil or holds a nil pointer (what
// onnxruntime_go leaves for an output it did not wrap, a rank-0 one).
func isNilValue(v ort.Value) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// toORT wraps t's data (not copied) as an ONNX Runtime tensor.
func toORT(t pipeline.Tensor) (ort.Value, error) {
	if len(t.Shape) == 0 {
		return scalarToORT(t)
	}
	shape := ort.NewShape(t.Shape...)
	switch d := t.Data.(type) {
	case []float32:
		return ort.NewTensor(shape, d)
	case []uint8:
		return ort.NewTensor(shape, d)
	case []int8:
		return ort.NewTensor(shape, d)
	case []int32:
		return ort.NewTensor(shape, d)
	case []int64:
		return ort.NewTensor(shape, d)
	case []float64:
		return ort.NewTensor(shape, d)
	}
	return nil, fmt.Errorf("%w: unsupported element type %T", pipeline.ErrBadTensor, t.Data)
}

// fromORT returns v's shape and data; the data aliases v's Go-backed slice
// (no copy). Boolean tensors are converted to uint8.
func fromORT(v ort.Value) (pipeline.Tensor, error) {
	shape := []int64(v.GetShape())
	switch t := v.(type) {
	case *ort.Tensor[float32]:
		return pipeline.Tensor{Shape: shape, Data: t.GetData()}, nil
	case *ort.Tensor[uint8]:
		return pipeline.Tensor{Shape: shape, Data: t.GetData()}, nil
	case *ort.Tensor[int8]:
		return pipeline.Tensor{Shape: shape, Data: t.GetData()}, nil
	case *ort.Tensor[int32]:
		return pipeline.Tensor{Shape: shape, Data: t.GetData()}, nil
	case *ort.Tensor[int64]:
		return pipeline.Tensor{Shape: shape, Data: t.GetData()}, nil
	case *ort.Tensor[float64]:
		return pipeline.Tensor{Shape: shape, Data: t.GetData()}, nil
	case *ort.Tensor[bool]:
		b := t.GetData()
		u := make([]uint8, len(b))
		for i, x := range b {
			if x {
				u[i] = 1
			}
		}
		return pipeline.Tensor{Shape: shape, Data: u}, nil
	}
	return pipeline.Tensor{}, fmt.Errorf("unsupported output type %s", ort.TensorElementDataType(v.DataType()))
}

// scalarToORT makes a 0-d tensor (an exported model's sample rate or step
// count input): ONNX Runtime scalars are copies, not views.
func scalarToORT(t pipeline.Tensor) (ort.Value, error) {
	if t.Len() != 1 {
		return nil, fmt.Errorf("%w: a scalar holds one value, got %d", pipeline.ErrBadTensor, t.Len())
	}
	switch d := t.Data.(type) {
	case []float32:
		return ort.NewScalar(d[0])
	case []uint8:
		return ort.NewScalar(d[0])
	case []int8:
		return ort.NewScalar(d[0])
	case []int32:
		return ort.NewScalar(d[0])
	case []int64:
		return ort.NewScalar(d[0])
	case []float64:
		return ort.NewScalar(d[0])
	}
	return nil, fmt.Errorf("%w: unsupported element type %T", pipeline.ErrBadTensor, t.Data)
}
