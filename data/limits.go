package data

import "archive/zip"

// DefaultMaxDecodedBytes is the default of data_source.max_decoded_bytes:
// the most bytes one sample file (a .npy file, one array of a .npz file)
// may decode to, and the most an IDX file may decode to before it is read
// in a stream instead of in memory (256 MiB).
const DefaultMaxDecodedBytes = 256 << 20

// maxDeflateRatio is the most deflate (zip's and gzip's compression) can
// expand its input: a 258-byte match costs at least 2 bits, so 1032:1
// (zlib's technical notes). A declared size beyond it is a lie.
const maxDeflateRatio = 1032

// deflateSlack allows for the headers of a small compressed stream.
const deflateSlack = 1 << 10

// maxDecoded is the limit in effect: the configured one, else the default.
func (c Config) maxDecoded() int64 {
	if c.MaxDecodedBytes > 0 {
		return c.MaxDecodedBytes
	}
	return DefaultMaxDecodedBytes
}

// tooLarge is the error for a declared size above the limit.
func tooLarge(what string, size uint64, limit int64) error {
	return errorf(ErrBadFile, "%s: decodes to %d bytes, more than data_source.max_decoded_bytes (%d); raise it if the data is real",
		what, size, limit)
}

// beyondDeflate reports whether size bytes cannot come out of compressed
// bytes of deflate data.
func beyondDeflate(size, compressed uint64) bool {
	return size > compressed*maxDeflateRatio+deflateSlack
}

// checkZipMember checks the sizes a zip directory declares for f against
// the limit and against what its compressed bytes can hold, before
// anything is allocated; what names the member in errors.
func checkZipMember(f *zip.File, what string, limit int64) error {
	size, packed := f.UncompressedSize64, f.CompressedSize64
	switch {
	case size > uint64(limit):
		return tooLarge(what, size, limit)
	case f.Method == zip.Store && size != packed:
		return errorf(ErrBadFile, "%s: stored uncompressed in %d bytes, zip directory says %d", what, packed, size)
	case f.Method == zip.Deflate && beyondDeflate(size, packed):
		return errorf(ErrBadFile, "%s: zip directory declares %d bytes from %d compressed bytes, more than deflate's %d:1 (a corrupt or crafted file)",
			what, size, packed, maxDeflateRatio)
	case f.Method != zip.Store && f.Method != zip.Deflate:
		return errorf(ErrBadFile, "%s: zip compression method %d not supported (want stored or deflate)", what, f.Method)
	}
	return nil
}

// errLonger is the error for data beyond the declared size.
func errLonger(what string, declared uint64) error {
	return errorf(ErrBadFile, "%s: data longer than the %d bytes declared", what, declared)
}
