package engine

import (
	"bufio"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/cpu"
)

// CPU is what matters of a processor for INT8 inference: ONNX Runtime's
// u8×s8 kernels use VNNI (exact int32 sums) where the CPU has it, and on
// AVX2 without VNNI add pairs of products in a saturating int16 (which
// saturation_fix avoids). Features come from CPUID, so an emulated CPU
// (qemu-x86_64 -cpu Haswell) reports the features it emulates.
type CPU struct {
	Model    string   `json:"model"`
	Features []string `json:"features"`
	// VNNI is true when ONNX Runtime takes a VNNI kernel (avx512_vnni or
	// avx_vnni).
	VNNI bool `json:"vnni"`
}

// String is "AMD EPYC (avx2 avx512f avx512_vnni)".
func (c CPU) String() string {
	return c.Model + " (" + strings.Join(c.Features, " ") + ")"
}

var hostCPU = sync.OnceValue(func() CPU {
	c := CPU{Model: cpuModel()}
	for _, f := range []struct {
		name string
		has  bool
	}{
		{"avx2", cpu.X86.HasAVX2},
		{"avx512f", cpu.X86.HasAVX512F},
		{"avx512bw", cpu.X86.HasAVX512BW},
		{"avx512_vnni", cpu.X86.HasAVX512VNNI},
		{"avx_vnni", cpu.X86.HasAVXVNNI},
		{"amx_int8", cpu.X86.HasAMXInt8},
		{"asimddp", cpu.ARM64.HasASIMDDP},
	} {
		if f.has {
			c.Features = append(c.Features, f.name)
		}
	}
	c.VNNI = cpu.X86.HasAVX512VNNI || cpu.X86.HasAVXVNNI
	return c
})

// HostCPU describes the CPU this process runs on.
func HostCPU() CPU { return hostCPU() }

// cpuModel is /proc/cpuinfo's "model name" ("unknown" elsewhere).
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// WorkerCPUs reports the one "worker" of an in-process engine: this CPU
// (cluster.Engine reports each fleet worker's).
func (e *Engine) WorkerCPUs() map[string]CPU { return map[string]CPU{"in-process": HostCPU()} }
