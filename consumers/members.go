package consumers

// Decoding the members of a provider object that a handler's struct names.
//
// A Stripe customer is 1.5 KB of JSON of which the handler reads six
// members. encoding/json validates the whole object and then walks it again
// byte by byte through its state machine to skip what the struct does not
// name: in the hot-key bench that was a quarter of syncd's CPU. The body
// was validated when its envelope was read (events.fields), so
// decodeMembers walks the object once with gjson, which skips a value by
// scanning for its end, and hands encoding/json only the members the struct
// names. What each member decodes to stays encoding/json's: the same key
// matching (case-insensitive, the last duplicate winning), the same types,
// and an error for a value of the wrong type. A struct whose rules are
// more than that (embedded fields, ",string", its own UnmarshalJSON) is
// decoded by encoding/json whole.

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"unicode"

	"github.com/tidwall/gjson"
)

// member is a struct field that a JSON member decodes into.
type member struct {
	name  string
	index int
	kind  memberKind
}

// memberKind picks a fast path for the commonest field types; the others
// go through json.Unmarshal.
type memberKind int8

const (
	memberOther memberKind = iota
	memberString
	memberStringPtr
	memberBool
	memberRaw
)

// memberPlan is how a struct type is decoded; nil members means
// encoding/json decodes it whole.
type memberPlan struct{ members []member }

var memberPlans sync.Map // reflect.Type → *memberPlan

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	rawMessageType  = reflect.TypeFor[json.RawMessage]()
)

func planOf(t reflect.Type) *memberPlan {
	if p, ok := memberPlans.Load(t); ok {
		return p.(*memberPlan)
	}
	p := &memberPlan{members: planMembers(t)}
	memberPlans.Store(t, p)
	return p
}

// planMembers lists the JSON members of struct type t as encoding/json
// names them, or nil where its rules are more than a flat list of
// uniquely named fields.
func planMembers(t reflect.Type) []member {
	if t.Kind() != reflect.Struct {
		return nil
	}
	if pt := reflect.PointerTo(t); pt.Implements(jsonUnmarshaler) || pt.Implements(textUnmarshaler) {
		return nil
	}
	var out []member
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			return nil
		}
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		for o := range strings.SplitSeq(opts, ",") {
			if o == "string" {
				return nil
			}
		}
		if name == "" || !validMemberName(name) {
			name = f.Name
		}
		for _, m := range out {
			if strings.EqualFold(m.name, name) {
				return nil // encoding/json's precedence rules apply
			}
		}
		out = append(out, member{name: name, index: i, kind: kindOf(f.Type)})
	}
	if out == nil {
		return nil
	}
	return out
}

// validMemberName is encoding/json's isValidTag: a tag name it would not
// take leaves the field's own name.
func validMemberName(s string) bool {
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return false
		}
	}
	return true
}

func kindOf(t reflect.Type) memberKind {
	switch {
	case t == rawMessageType:
		return memberRaw
	case reflect.PointerTo(t).Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler):
		return memberOther
	case t == reflect.TypeFor[string]():
		return memberString
	case t == reflect.TypeFor[bool]():
		return memberBool
	case t == reflect.TypeFor[*string]():
		return memberStringPtr
	}
	return memberOther
}

// decodeMembers decodes the JSON object raw (valid JSON) into the struct v
// points to, as json.Unmarshal would.
func decodeMembers(raw gjson.Result, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || !raw.IsObject() {
		return json.Unmarshal([]byte(raw.Raw), v)
	}
	plan := planOf(rv.Type().Elem())
	if plan.members == nil {
		return json.Unmarshal([]byte(raw.Raw), v)
	}
	s := rv.Elem()
	var err error
	raw.ForEach(func(key, value gjson.Result) bool {
		name := key.Str
		if strings.IndexByte(key.Raw, '\\') >= 0 {
			if err = json.Unmarshal([]byte(key.Raw), &name); err != nil {
				return false
			}
		}
		for _, m := range plan.members {
			if strings.EqualFold(m.name, name) {
				err = decodeMember(s.Field(m.index), m.kind, value)
				return err == nil
			}
		}
		return true
	})
	return err
}

func decodeMember(f reflect.Value, kind memberKind, value gjson.Result) error {
	plain := value.Type == gjson.String && strings.IndexByte(value.Raw, '\\') < 0
	switch {
	case kind == memberString && plain:
		f.SetString(value.Str)
	case kind == memberStringPtr && plain:
		s := value.Str
		f.Set(reflect.ValueOf(&s))
	case kind == memberBool && (value.Type == gjson.True || value.Type == gjson.False):
		f.SetBool(value.Type == gjson.True)
	case kind == memberRaw:
		f.SetBytes([]byte(value.Raw))
	default:
		return json.Unmarshal([]byte(value.Raw), f.Addr().Interface())
	}
	return nil
}
