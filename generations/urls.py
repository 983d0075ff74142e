"""Every object is addressed by its UUID; media lives under /media/ only behind a view."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.project_list, name="project-list"),
    path("projects/new/", views.project_create, name="project-create"),
    path("projects/<uuid:uuid>/", views.project_detail, name="project-detail"),
    path("projects/<uuid:uuid>/poll/", views.project_poll, name="project-poll"),
    path("projects/<uuid:uuid>/gallery/", views.project_gallery, name="project-gallery"),
    path("projects/<uuid:uuid>/members/", views.project_members, name="project-members"),
    path("projects/<uuid:uuid>/generate/", views.project_generate_all, name="project-generate-all"),
    path("projects/<uuid:uuid>/scenes/new/", views.scene_create, name="scene-create"),
    path("projects/<uuid:uuid>/scenes/order/", views.scene_order, name="scene-order"),
    path("scenes/<uuid:uuid>/edit/", views.scene_edit, name="scene-edit"),
    path("scenes/<uuid:uuid>/move/", views.scene_move, name="scene-move"),
    path("scenes/<uuid:uuid>/delete/", views.scene_delete, name="scene-delete"),
    path("scenes/<uuid:uuid>/generate/", views.scene_generate, name="scene-generate"),
    path("takes/<uuid:uuid>/retry/", views.take_retry, name="take-retry"),
    path("takes/<uuid:uuid>/cancel/", views.take_cancel, name="take-cancel"),
    path("media/take/<uuid:uuid>/video", views.take_video, name="media-take-video"),
    path("media/take/<uuid:uuid>/poster", views.take_poster, name="media-take-poster"),
    path("media/image/<uuid:uuid>", views.image_file, name="media-image"),
]
