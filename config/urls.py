from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from hub import views as hub_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("hub.urls")),
    path("api/v1/", include("evaluator.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("healthz", hub_views.healthz, name="healthz"),
    path("", include("serving.urls")),  # /v1/ (OpenAI gateway), /metrics, /api/v1/…/deploy/
    # --- web catalog (web/) ---
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("web.urls")),
    # --- end web catalog ---
    path("", include("hub.hf_urls")),
]
