from django.conf import settings


def flowsite(request) -> dict:
    return {
        "FLOWSITE_EMULATOR": settings.FLOWSITE_EMULATOR,
        "PAGE_POLL_SECONDS": settings.FLOWSITE_PAGE_POLL_SECONDS,
    }
