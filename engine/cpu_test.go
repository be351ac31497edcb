package engine

import (
	"os"
	"strings"
	"testing"
)

// TestHostCPU: the features come from CPUID and agree with the kernel's
// view in /proc/cpuinfo (when not emulated).
func TestHostCPU(t *testing.T) {
	c := HostCPU()
	if c.Model == "" || !strings.Contains(c.String(), c.Model) {
		t.Fatalf("HostCPU() = %+v", c)
	}
	raw, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Skip("no /proc/cpuinfo")
	}
	var flags []string
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "flags" {
			flags = strings.Fields(v)
			break
		}
	}
	if flags == nil {
		t.Skip("no x86 flags line in /proc/cpuinfo")
	}
	has := func(f string) bool {
		for _, x := range flags {
			if x == f {
				return true
			}
		}
		return false
	}
	vnni := has("avx512_vnni") || has("avx_vnni")
	if c.VNNI != vnni {
		t.Errorf("HostCPU().VNNI = %v, /proc/cpuinfo says %v (%s)", c.VNNI, vnni, c)
	}
	if has("avx2") != strings.Contains(c.String(), "avx2") {
		t.Errorf("avx2: HostCPU %s, /proc/cpuinfo %v", c, has("avx2"))
	}
}
