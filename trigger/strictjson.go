package trigger

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
)

// keySchema is what checkKeys knows of a JSON object: its keys as
// Alertmanager writes them (nil for a map of free keys such as labels) and
// what each holds; elem is the element of an array.
type keySchema struct {
	keys map[string]*keySchema
	elem *keySchema
}

// payloadSchema is the notification as Alertmanager writes it.
var payloadSchema = func() *keySchema {
	s := schemaOf(payload{})
	s.keys["alerts"] = &keySchema{elem: schemaOf(alert{})}
	return s
}()

// schemaOf lists the JSON keys of a struct's fields.
func schemaOf(v any) *keySchema {
	s := &keySchema{keys: map[string]*keySchema{}}
	rt := reflect.TypeOf(v)
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			s.keys[name] = nil
		}
	}
	return s
}

// checkKeys refuses what encoding/json would read loosely: a key twice in
// one object (the last would win) and a key the trigger reads written in
// another case (encoding/json matches keys case-insensitively, so
// {"status":"resolved","Status":"firing"} would read as firing). Keys it
// does not know are accepted.
func checkKeys(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	return walkJSON(dec, payloadSchema, "")
}

func walkJSON(dec *json.Decoder, s *keySchema, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return badPayload("invalid JSON: %s", jsonErrorMessage(err))
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return badPayload("invalid JSON: %s", jsonErrorMessage(err))
			}
			key, _ := kt.(string)
			at := path + "." + truncate(key, 40)
			if seen[key] {
				return badPayload("invalid JSON: key %q appears twice in %s", truncate(key, 40), where(path))
			}
			seen[key] = true
			var child *keySchema
			if s != nil && s.keys != nil {
				if c, ok := s.keys[key]; ok {
					child = c
				} else {
					for k := range s.keys {
						if strings.EqualFold(k, key) {
							return badPayload("invalid JSON: key %q in %s: Alertmanager writes it %q", truncate(key, 40), where(path), k)
						}
					}
				}
			}
			if err := walkJSON(dec, child, at); err != nil {
				return err
			}
		}
		_, err = dec.Token() // '}'
	case json.Delim('['):
		var elem *keySchema
		if s != nil {
			elem = s.elem
		}
		for i := 0; dec.More(); i++ {
			if err := walkJSON(dec, elem, path+"[]"); err != nil {
				return err
			}
		}
		_, err = dec.Token() // ']'
	}
	if err != nil {
		return badPayload("invalid JSON: %s", jsonErrorMessage(err))
	}
	return nil
}

func where(path string) string {
	if path == "" {
		return "the payload"
	}
	return strings.TrimPrefix(path, ".")
}
