package authzen

import "net/http"

// metadataResponse is the Policy Decision Point metadata (§9.1).
type metadataResponse struct {
	PolicyDecisionPoint       string `json:"policy_decision_point"`
	AccessEvaluationEndpoint  string `json:"access_evaluation_endpoint"`
	AccessEvaluationsEndpoint string `json:"access_evaluations_endpoint"`
	SearchSubjectEndpoint     string `json:"search_subject_endpoint"`
	SearchActionEndpoint      string `json:"search_action_endpoint"`
	SearchResourceEndpoint    string `json:"search_resource_endpoint"`
}

// metadata serves GET /.well-known/authzen-configuration (§9.2).
func (h *Handler) metadata(w http.ResponseWriter, r *http.Request) {
	base := h.baseURL
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	} else {
		// §11.9: the document is cacheable; a derived one varies with the
		// Host it was asked at.
		w.Header().Set("Cache-Control", "max-age=3600")
	}
	h.reply(w, metadataResponse{
		PolicyDecisionPoint:       base,
		AccessEvaluationEndpoint:  base + EvaluationPath,
		AccessEvaluationsEndpoint: base + EvaluationsPath,
		SearchSubjectEndpoint:     base + SearchSubjectPath,
		SearchActionEndpoint:      base + SearchActionPath,
		SearchResourceEndpoint:    base + SearchResourcePath,
	})
}
