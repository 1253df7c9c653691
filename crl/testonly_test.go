package crl

// Issuers are the issuers in the order given.
func (p *Publisher) Issuers() []Issuer {
	out := make([]Issuer, len(p.order))
	for i, n := range p.order {
		out[i] = p.issuers[n].Issuer
	}
	return out
}
