package eval

import "context"

func (rq *request) lookupResources(ctx context.Context, req LookupResourcesRequest, yield func(ResourceResult, error) bool) {
	yield(ResourceResult{}, invalidRequest("LookupResources: not implemented yet"))
}

func (rq *request) lookupSubjects(ctx context.Context, req LookupSubjectsRequest, yield func(SubjectResult, error) bool) {
	yield(SubjectResult{}, invalidRequest("LookupSubjects: not implemented yet"))
}
