package eval

import (
	"reflect"
	"testing"
)

// TestChunkRequestCopiesScope: a chunk's request shares every field of
// the lookup's request that describes the call (snapshot, clock, caveat
// context, contextual relationships and what they change, goroutines),
// and only its memo, memory account and their bookkeeping are its own. A
// field added to request and not to chunkRequest fails here: it once
// left out the contextual nested-group edges, so that chunks read the
// index that the call's contextual relationships made stale.
func TestChunkRequestCopiesScope(t *testing.T) {
	own := map[string]bool{"seq": true, "mu": true, "memo": true, "revs": true, "mem": true, "ctxOnce": true, "ctxHash": true, "ctxOK": true}
	rd := load(t, nil)
	rq := &request{}
	v := reflect.ValueOf(rq).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		name := v.Type().Field(i).Name
		if own[name] {
			continue
		}
		// A non-zero value of the field's type, settable through an
		// unexported field with reflect.NewAt.
		f = reflect.NewAt(f.Type(), f.Addr().UnsafePointer()).Elem()
		switch f.Kind() {
		case reflect.Pointer:
			f.Set(reflect.New(f.Type().Elem()))
		case reflect.Slice:
			f.Set(reflect.MakeSlice(f.Type(), 1, 1))
		case reflect.Map:
			f.Set(reflect.MakeMap(f.Type()))
		case reflect.Chan:
			f.Set(reflect.MakeChan(f.Type(), 1))
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Uint64:
			f.SetUint(7)
		case reflect.Interface:
			// store.Reader and its powers: the memstore reader has them.
			if !reflect.TypeOf(rd).Implements(f.Type()) {
				t.Fatalf("field %s: the test's reader is not a %s", name, f.Type())
			}
			f.Set(reflect.ValueOf(rd))
		case reflect.Struct:
			if name == "now" {
				f.Set(reflect.ValueOf(testNow))
			}
		default:
			t.Fatalf("field %s of kind %s: teach this test to set it", name, f.Kind())
		}
	}
	c := rq.chunkRequest()
	cv := reflect.ValueOf(c).Elem()
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		if own[name] {
			continue
		}
		a := reflect.NewAt(v.Field(i).Type(), v.Field(i).Addr().UnsafePointer()).Elem().Interface()
		b := reflect.NewAt(cv.Field(i).Type(), cv.Field(i).Addr().UnsafePointer()).Elem().Interface()
		if !reflect.DeepEqual(a, b) {
			t.Errorf("chunkRequest does not copy %s", name)
		}
	}
}
