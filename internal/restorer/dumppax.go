package restorer

import (
	"archive/tar"
	"fmt"
	"maps"
	"slices"
	"strconv"
)

// rawPAXHeaders encodes h as a PAX extended header ('x') followed by a
// ustar header, for an entry archive/tar will not write (a GNU sparse
// one). Every number and time goes into the PAX records, which take
// precedence over the ustar fields; the ustar fields hold what fits, for
// readers without PAX support. h.Name must be ASCII and at most 100 bytes.
func rawPAXHeaders(h *tar.Header) ([]byte, error) {
	if len(h.Name) > 100 || !isASCII(h.Name) {
		return nil, fmt.Errorf("raw tar header: name %q does not fit a ustar header", h.Name)
	}
	recs := maps.Clone(h.PAXRecords)
	recs["mtime"] = paxTime(h.ModTime.UnixNano())
	if !h.AccessTime.IsZero() {
		recs["atime"] = paxTime(h.AccessTime.UnixNano())
	}
	recs["uid"] = strconv.Itoa(h.Uid)
	recs["gid"] = strconv.Itoa(h.Gid)
	recs["size"] = strconv.FormatInt(h.Size, 10)
	if h.Uname != "" {
		recs["uname"] = h.Uname
	}
	if h.Gname != "" {
		recs["gname"] = h.Gname
	}
	var body []byte
	for _, k := range slices.Sorted(maps.Keys(recs)) {
		body = append(body, paxRecord(k, recs[k])...)
	}
	x := ustarHeader("PaxHeaders/"+truncate(h.Name, 89), 0o644, int64(len(body)), 0, 0, 'x', "", "")
	out := append(x, body...)
	if pad := len(body) % tarBlockSize; pad != 0 {
		out = append(out, make([]byte, tarBlockSize-pad)...)
	}
	uname, gname := h.Uname, h.Gname
	if len(uname) > 31 || !isASCII(uname) {
		uname = ""
	}
	if len(gname) > 31 || !isASCII(gname) {
		gname = ""
	}
	u := ustarHeader(h.Name, h.Mode, h.Size, h.Uid, h.Gid, h.Typeflag, uname, gname)
	octal(u[136:148], h.ModTime.Unix())
	checksum(u)
	return append(out, u...), nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// paxRecord formats "LEN KEY=VALUE\n", LEN counting the whole record.
func paxRecord(k, v string) string {
	n := len(k) + len(v) + 3 // " ", "=", "\n"
	for len(strconv.Itoa(n))+len(k)+len(v)+3 != n {
		n++
	}
	return strconv.Itoa(n) + " " + k + "=" + v + "\n"
}

// paxTime formats nanoseconds since the epoch as seconds with a
// fraction; before 1970 the sign covers both ("-1.5" is 1.5 s before).
func paxTime(ns int64) string {
	sign := ""
	if ns < 0 {
		sign, ns = "-", -ns
	}
	return fmt.Sprintf("%s%d.%09d", sign, ns/1e9, ns%1e9)
}

// ustarHeader builds a 512-byte ustar header; values that do not fit are
// left zero (the PAX records hold them). The checksum is set.
func ustarHeader(name string, mode, size int64, uid, gid int, typ byte, uname, gname string) []byte {
	b := make([]byte, tarBlockSize)
	copy(b[0:100], name)
	octal(b[100:108], mode&0o7777)
	octal(b[108:116], int64(uid))
	octal(b[116:124], int64(gid))
	octal(b[124:136], size)
	b[156] = typ
	copy(b[257:263], "ustar\x00")
	copy(b[263:265], "00")
	copy(b[265:297], uname)
	copy(b[297:329], gname)
	checksum(b)
	return b
}

// octal writes v as zero-padded octal digits and a NUL into f, or leaves
// f zero when v does not fit.
func octal(f []byte, v int64) {
	s := strconv.FormatInt(v, 8)
	if v < 0 || len(s) > len(f)-1 {
		clear(f)
		return
	}
	for i := range f[:len(f)-1] {
		f[i] = '0'
	}
	copy(f[len(f)-1-len(s):], s)
	f[len(f)-1] = 0
}

// checksum sets the header checksum: the sum of its bytes with the
// checksum field counted as spaces.
func checksum(b []byte) {
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b {
		sum += int64(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
}
