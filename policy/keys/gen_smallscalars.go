//go:build ignore

// gen_smallscalars writes smallscalars.bin: for P-256, then P-384, the multiples
// k·G of the generator for k = 1 … 2^16, each as the first 4 bytes of its
// x-coordinate and k-1 (2 bytes, big-endian), sorted by those bytes. Run it with
// "go generate ./policy/keys"; the file is deterministic.
package main

import (
	"bytes"
	"crypto/elliptic"
	"encoding/binary"
	"log"
	"math/big"
	"os"
	"sort"
)

func main() {
	var out bytes.Buffer
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384()} {
		p := c.Params()
		type rec struct {
			prefix uint32
			k      uint16
		}
		recs := make([]rec, 0, 1<<16)
		x, y := new(big.Int).Set(p.Gx), new(big.Int).Set(p.Gy)
		inv, l, u, nx, ny := new(big.Int), new(big.Int), new(big.Int), new(big.Int), new(big.Int)
		for k := 1; k <= 1<<16; k++ {
			b := x.FillBytes(make([]byte, (p.BitSize+7)/8))
			recs = append(recs, rec{binary.BigEndian.Uint32(b), uint16(k - 1)})
			if k == 1 {
				x, y = c.Double(p.Gx, p.Gy)
				continue
			}
			inv.Sub(p.Gx, x).Mod(inv, p.P).ModInverse(inv, p.P)
			l.Sub(p.Gy, y).Mul(l, inv).Mod(l, p.P)
			u.Mul(l, l).Sub(u, x).Sub(u, p.Gx)
			nx.Mod(u, p.P)
			u.Sub(x, nx).Mul(u, l).Sub(u, y)
			ny.Mod(u, p.P)
			x.Set(nx)
			y.Set(ny)
		}
		sort.Slice(recs, func(i, j int) bool { return recs[i].prefix < recs[j].prefix })
		for _, r := range recs {
			binary.Write(&out, binary.BigEndian, r.prefix)
			binary.Write(&out, binary.BigEndian, r.k)
		}
	}
	if err := os.WriteFile("smallscalars.bin", out.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}
