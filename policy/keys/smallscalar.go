package keys

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	_ "embed"
	"encoding/binary"
	"math/big"
	"sort"
)

//go:generate go run gen_smallscalars.go

// maxSmallScalar is the largest private scalar refused as small: a key ±k·G with
// 1 ≤ k ≤ maxSmallScalar is found by anyone in moments. zlint's
// e_ecdsa_small_private_key looks for the same range with a baby-step/giant-step
// search on every certificate (most of all lint time); here the multiples are a
// table computed once, at build time, and each check is a binary search.
const maxSmallScalar = 1 << 16

// smallScalars is gen_smallscalars.go's table: per curve (P-256, then P-384),
// maxSmallScalar records of the first 4 bytes of the x-coordinate of k·G and k-1,
// sorted by those bytes.
//
//go:embed smallscalars.bin
var smallScalars []byte

const smallRecord = 6

var smallTables = map[elliptic.Curve][]byte{
	elliptic.P256(): smallScalars[:maxSmallScalar*smallRecord],
	elliptic.P384(): smallScalars[maxSmallScalar*smallRecord:],
}

// smallScalar reports whether k's private scalar is ±n with n ≤ maxSmallScalar.
func smallScalar(k *ecdsa.PublicKey) bool {
	table := smallTables[k.Curve]
	if len(table) != maxSmallScalar*smallRecord {
		return false
	}
	b := k.X.FillBytes(make([]byte, (k.Curve.Params().BitSize+7)/8))
	prefix := binary.BigEndian.Uint32(b)
	at := func(i int) uint32 { return binary.BigEndian.Uint32(table[i*smallRecord:]) }
	for i := sort.Search(maxSmallScalar, func(i int) bool { return at(i) >= prefix }); i < maxSmallScalar && at(i) == prefix; i++ {
		// The prefix matched: n·G must have the key's x (then the key is ±n·G).
		n := int64(binary.BigEndian.Uint16(table[i*smallRecord+4:])) + 1
		if x, _ := k.Curve.ScalarBaseMult(big.NewInt(n).Bytes()); x.Cmp(k.X) == 0 {
			return true
		}
	}
	return false
}
