package wire

import "fmt"

// Param is one Key-Value-Pair (§1.4.2). An even Key carries a varint in Value;
// an odd Key carries length-prefixed bytes in Bytes. The other field is unused
// (and must be left zero when encoding).
type Param struct {
	Key   uint64
	Value uint64
	Bytes []byte
}

// IsBytes reports whether the key's type is the length-prefixed (odd) form.
func (p Param) IsBytes() bool { return p.Key&1 == 1 }

// UintParam builds an even-key parameter.
func UintParam(key, value uint64) Param { return Param{Key: key, Value: value} }

// BytesParam builds an odd-key parameter.
func BytesParam(key uint64, value []byte) Param { return Param{Key: key, Bytes: value} }

// Params is an ordered parameter list. Order and duplicates of unknown keys
// are preserved so that relays can forward what they do not understand.
type Params []Param

// Get returns the first parameter with the key.
func (p Params) Get(key uint64) (Param, bool) {
	for _, q := range p {
		if q.Key == key {
			return q, true
		}
	}
	return Param{}, false
}

// Uint returns the value of the first parameter with the key, if the key is even.
func (p Params) Uint(key uint64) (uint64, bool) {
	if key&1 == 1 {
		return 0, false
	}
	q, ok := p.Get(key)
	return q.Value, ok
}

// Bytes returns the value of the first parameter with the key, if the key is odd.
func (p Params) Bytes(key uint64) ([]byte, bool) {
	if key&1 == 0 {
		return nil, false
	}
	q, ok := p.Get(key)
	return q.Bytes, ok
}

// All returns every parameter with the key, in order (for repeatable
// parameters such as AUTHORIZATION TOKEN).
func (p Params) All(key uint64) []Param {
	var out []Param
	for _, q := range p {
		if q.Key == key {
			out = append(out, q)
		}
	}
	return out
}

// Token is the AUTHORIZATION TOKEN parameter value (§9.2.1.1). Which of Alias,
// TokenType and Value are on the wire depends on AliasType.
type Token struct {
	AliasType uint64
	Alias     uint64 // DELETE, REGISTER, USE_ALIAS
	TokenType uint64 // REGISTER, USE_VALUE
	Value     []byte // REGISTER, USE_VALUE: the rest of the parameter value
}

// AppendToken serializes t as a parameter value. It returns an error for an
// unknown AliasType or a varint out of range.
func AppendToken(b []byte, t Token) ([]byte, error) {
	switch t.AliasType {
	case TokenAliasDelete, TokenAliasUseAlias:
		if t.Alias > MaxVarint {
			return b, fmt.Errorf("%w: token alias out of range", ErrInvalidMessage)
		}
		b = AppendVarint(b, t.AliasType)
		return AppendVarint(b, t.Alias), nil
	case TokenAliasRegister:
		if t.Alias > MaxVarint || t.TokenType > MaxVarint {
			return b, fmt.Errorf("%w: token field out of range", ErrInvalidMessage)
		}
		b = AppendVarint(b, t.AliasType)
		b = AppendVarint(b, t.Alias)
		b = AppendVarint(b, t.TokenType)
		return append(b, t.Value...), nil
	case TokenAliasUseValue:
		if t.TokenType > MaxVarint {
			return b, fmt.Errorf("%w: token type out of range", ErrInvalidMessage)
		}
		b = AppendVarint(b, t.AliasType)
		b = AppendVarint(b, t.TokenType)
		return append(b, t.Value...), nil
	}
	return b, fmt.Errorf("%w: unknown token alias type %d", ErrInvalidMessage, t.AliasType)
}

// ParseToken decodes an AUTHORIZATION TOKEN parameter value. A structure that
// cannot be decoded is a KEY_VALUE_FORMATTING_ERROR (§9.2.1.1). Value aliases b.
func ParseToken(b []byte) (Token, error) {
	var t Token
	bad := func(why string) (Token, error) {
		return Token{}, sessionErr(KeyValueFormattingError, "authorization token: %s", why)
	}
	v, n, err := ParseVarint(b)
	if err != nil {
		return bad("truncated alias type")
	}
	t.AliasType, b = v, b[n:]
	switch t.AliasType {
	case TokenAliasDelete, TokenAliasUseAlias:
		if t.Alias, n, err = ParseVarint(b); err != nil {
			return bad("truncated alias")
		}
		if len(b) != n {
			return bad("trailing bytes after alias")
		}
		return t, nil
	case TokenAliasRegister:
		if t.Alias, n, err = ParseVarint(b); err != nil {
			return bad("truncated alias")
		}
		b = b[n:]
		fallthrough
	case TokenAliasUseValue:
		if t.TokenType, n, err = ParseVarint(b); err != nil {
			return bad("truncated token type")
		}
		if b = b[n:]; len(b) > 0 {
			t.Value = b
		}
		return t, nil
	}
	return bad(fmt.Sprintf("unknown alias type %d", t.AliasType))
}

// paramRule tells how a known parameter key is treated in a message type.
type paramRule struct {
	known      bool // understood in this message: duplicates are checked
	repeatable bool // the definition allows several instances
	token      bool // value must parse as a Token structure
}

// ruleFor encodes §9.2 and §9.3.2: setup messages have their own key space;
// a version-specific parameter is only "known" in the messages its definition
// lists, elsewhere it MUST be ignored (so it is treated like an unknown key).
func ruleFor(msgType, key uint64) paramRule {
	if msgType == MsgClientSetup || msgType == MsgServerSetup {
		switch key {
		case ParamPath, ParamMaxRequestID, ParamMaxAuthTokenCacheSize, ParamAuthority, ParamImplementation:
			return paramRule{known: true}
		case ParamAuthorizationToken:
			return paramRule{known: true, repeatable: true, token: true}
		}
		return paramRule{}
	}
	switch key {
	case ParamAuthToken:
		switch msgType {
		case MsgPublish, MsgSubscribe, MsgSubscribeUpdate, MsgSubscribeNamespace,
			MsgPublishNamespace, MsgTrackStatus, MsgFetch:
			return paramRule{known: true, repeatable: true, token: true}
		}
	case ParamDeliveryTimeout:
		switch msgType {
		case MsgTrackStatus, MsgTrackStatusOK, MsgPublish, MsgPublishOK,
			MsgSubscribe, MsgSubscribeOK, MsgSubscribeUpdate:
			return paramRule{known: true}
		}
	case ParamMaxCacheDuration:
		switch msgType {
		case MsgPublish, MsgSubscribeOK, MsgFetchOK, MsgTrackStatusOK:
			return paramRule{known: true}
		}
	}
	return paramRule{}
}

// checkParams applies the per-message parameter rules: no duplicates of known
// non-repeatable keys (PROTOCOL_VIOLATION, §9.2) and well-formed tokens
// (KEY_VALUE_FORMATTING_ERROR, §9.2.1.1). Parameter lists are short, so the
// quadratic duplicate scan beats allocating a set.
func checkParams(msgType uint64, ps Params) error {
	for i, p := range ps {
		r := ruleFor(msgType, p.Key)
		if !r.known {
			continue
		}
		if r.token {
			if _, err := ParseToken(p.Bytes); err != nil {
				return err
			}
		}
		if !r.repeatable {
			for _, q := range ps[:i] {
				if q.Key == p.Key {
					return protocolViolation("duplicate parameter 0x%x", p.Key)
				}
			}
		}
	}
	return nil
}

// AppendExtensions serializes extension headers as a Key-Value-Pair sequence
// (without the Extension Headers Length prefix), for building
// ObjectHeader.Extensions. It panics on an out-of-range varint.
func AppendExtensions(b []byte, exts Params) []byte {
	for _, p := range exts {
		b = appendKVP(b, p)
	}
	return b
}

// ParseExtensions decodes an extension header block (as found in
// ObjectHeader.Extensions) into Key-Value-Pairs. Bytes alias b.
func ParseExtensions(b []byte) (Params, error) {
	var out Params
	for len(b) > 0 {
		p, n, err := parseKVP(b)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
		b = b[n:]
	}
	return out, nil
}

// validateExtensions checks the framing of an extension block without
// allocating: relays forward unknown extensions verbatim, but a block whose
// Key-Value-Pairs do not add up cannot be an extension block.
func validateExtensions(b []byte) error {
	for len(b) > 0 {
		_, n, err := parseKVP(b)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func appendKVP(b []byte, p Param) []byte {
	b = AppendVarint(b, p.Key)
	if p.Key&1 == 0 {
		return AppendVarint(b, p.Value)
	}
	b = AppendVarint(b, uint64(len(p.Bytes)))
	return append(b, p.Bytes...)
}

// parseKVP decodes one Key-Value-Pair at the start of b. Bytes aliases b.
func parseKVP(b []byte) (Param, int, error) {
	key, n, err := ParseVarint(b)
	if err != nil {
		return Param{}, 0, protocolViolation("key-value pair: truncated type")
	}
	p, m, err := parseKVPValue(b[n:], key)
	return p, n + m, err
}

// parseKVPValue decodes the value of a Key-Value-Pair of type key at the
// start of b. Bytes aliases b.
func parseKVPValue(b []byte, key uint64) (Param, int, error) {
	return parseKVPValueV(b, key, vint{})
}

// parseKVPValueV is parseKVPValue with the varint encoding vi.
func parseKVPValueV(b []byte, key uint64, vi vint) (Param, int, error) {
	p := Param{Key: key}
	v, n, err := vi.parse(b)
	if err != nil {
		return Param{}, 0, protocolViolation("key-value pair 0x%x: truncated value", key)
	}
	if key&1 == 0 {
		p.Value = v
		return p, n, nil
	}
	if v > MaxParamValueLen {
		return Param{}, 0, protocolViolation("key-value pair 0x%x: length %d exceeds 65535", key, v)
	}
	if v > uint64(len(b)-n) {
		return Param{}, 0, protocolViolation("key-value pair 0x%x: length %d runs past end", key, v)
	}
	if v > 0 {
		p.Bytes = b[n : n+int(v)]
	}
	return p, n + int(v), nil
}
