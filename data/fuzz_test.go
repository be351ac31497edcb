package data

import (
	"encoding/binary"
	"testing"
)

// FuzzReadNpy feeds arbitrary bytes to the .npy decoder: it must never
// panic, and a decoded array must be a valid tensor no larger than the input.
func FuzzReadNpy(f *testing.F) {
	f.Add(npyBytes(f, [1][3][2][2]float32{}))
	f.Add(npyBytes(f, [2]float64{1, 2}))
	f.Add(npyBytes(f, [3]uint8{1, 2, 3}))
	f.Add(npyBytes(f, [2]int8{-1, 1}))
	f.Add(npyBytes(f, [2][2]int32{}))
	f.Add(npyBytes(f, [2]int64{}))
	f.Add(npyBytes(f, float32(1)))
	f.Add(npyBytes(f, [0]float32{}))
	f.Add(rawNpy("<i8", true, "(2, 3)", le64(0, 3, 1, 4, 2, 5)))
	f.Add(rawNpy(">f4", false, "(1,)", []byte{0x3f, 0x80, 0, 0}))
	f.Add(rawNpy("|b1", false, "(1,)", []byte{1}))
	f.Add(rawNpy("<f4", false, "(1000000000, 1000000000)", nil))
	f.Add([]byte("\x93NUMPY\x02\x00\xff\xff\xff\xff{'descr': '<f4'"))
	f.Add([]byte("\x93NUMPY\x01\x00\x10\x00{'descr': '<f4', }"))
	v2 := []byte("\x93NUMPY\x02\x00")
	dict := "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }   \n"
	v2 = binary.LittleEndian.AppendUint32(v2, uint32(len(dict)))
	f.Add(append(append(v2, dict...), 0, 0, 0x80, 0x3f))
	f.Fuzz(func(t *testing.T, b []byte) {
		tensor, err := readNpy(b)
		if err != nil {
			return
		}
		if err := tensor.Validate(); err != nil {
			t.Fatalf("decoded an invalid tensor: %v", err)
		}
		if tensor.Len() > len(b) {
			t.Fatalf("%d elements from %d bytes", tensor.Len(), len(b))
		}
	})
}
