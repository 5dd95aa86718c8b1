from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from hub import views as hub_views
from web.views import account

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("hub.urls")),
    path("api/v1/", include("evaluator.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's settings as a script file: no inline script (CSP).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    path("healthz", hub_views.healthz, name="healthz"),
    path("", include("serving.urls")),  # /v1/ (OpenAI gateway), /metrics, /api/v1/…/deploy/
    # --- web catalog (web/) ---
    path("accounts/login/", account.LoginView.as_view(), name="login"),  # rate-limited
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("web.urls")),
    # --- end web catalog ---
    path("", include("hub.hf.urls")),
]
